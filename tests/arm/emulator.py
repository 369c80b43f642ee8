"""A 64-bit ARM machine under user-mode emulation, made from Debian packages and aarch64 wheels.

What it holds, all in one cache folder (``$XDG_CACHE_HOME/edgecn-arm``, about 600 MB, kept between
runs and rebuilt when ``RECIPE`` changes):

* ``tools/``: Debian bookworm's qemu-user-static and proot for this (x86_64) host, unpacked from
  their .debs; nothing is installed on the system.
* ``sysroot/``: Debian bookworm arm64 with python3.11 and g++ (the device's own compiler, which
  compiles edgecn's native .pte runner there), unpacked from .debs resolved by apt against a private
  state folder, so the host's package database is never touched.
* ``site-litert/`` and ``site-tflite-runtime/``: aarch64 wheels installed with ``pip --target``:
  ai-edge-litert 2.3.0 (with numpy 2 and Pillow), and tflite-runtime 2.14 (it needs numpy < 2).
* ``wheels/``: the aarch64 executorch wheel, whose C++ libraries the native runner is built from.
* ``nofaccessat2``: a 30-line launcher (``nofaccessat2.c``) for qemu; see there.

Known traps, each handled here: ai-edge-litert crashes under qemu unless it reads an ARM
``/proc/cpuinfo`` (one is bound in, per emulated CPU); ExecuTorch's cpuinfo needs ``/sys``;
``--platform manylinux2014_aarch64`` alone finds no wheel for ai-edge-litert 2.3.0, executorch
1.5.1 or tflite-runtime 2.14, so every tag the guest's glibc allows is passed (``WHEEL_TAGS``); proot
runs the child processes a thread sweep starts, which plain qemu without binfmt_misc cannot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXECUTORCH = "1.5.1"
GLIBC = 36
"""Debian bookworm's glibc is 2.36: every manylinux tag up to it fits the emulated machine. pip's
``--platform`` takes tags literally, so all are listed (ai-edge-litert 2.3.0 is manylinux_2_27,
executorch 1.5.1 manylinux_2_28, tflite-runtime 2.14 manylinux_2_34)."""
WHEEL_TAGS = [a for tag in [*(f"manylinux_2_{m}_aarch64" for m in range(GLIBC, 16, -1)), "manylinux2014_aarch64"]
              for a in ("--platform", tag)]
SITES = {
    "litert": ["ai-edge-litert==2.3.0", "numpy>=1.23", "pillow>=9"],
    "tflite-runtime": ["tflite-runtime==2.14.0", "numpy<2", "pillow>=9"],
}
HOST_PACKAGES = ["qemu-user-static", "proot"]
GUEST_PACKAGES = ["python3.11", "g++"]
RECIPE = f"1|{SITES}|{HOST_PACKAGES}|{GUEST_PACKAGES}|{EXECUTORCH}|{(HERE / 'nofaccessat2.c').read_text()}"

# What /proc/cpuinfo says on each emulated core (implementer 0x41 is Arm; the part numbers are
# the Cortex-A72 of a Raspberry Pi 4 and the Cortex-A76 of a Raspberry Pi 5).
CPUS = {"cortex-a72": ("0xd08", "fp asimd evtstrm crc32 cpuid"),
        "cortex-a76": ("0xd0b", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                                "lrcpc dcpop asimddp")}

DEBIAN_SOURCES = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def unavailable() -> str | None:
    """Why this host cannot build the emulator (None: it can)."""
    import platform

    if platform.machine() != "x86_64" or sys.platform != "linux":
        return f"the ARM lane is built for x86_64 Linux hosts (this is {platform.machine()} {sys.platform})"
    missing = [t for t in ("apt-get", "dpkg-deb", "cc") if shutil.which(t) is None]
    if missing:
        return f"the ARM lane unpacks Debian packages and needs {', '.join(missing)}, which this host lacks"
    if not Path("/usr/share/keyrings/debian-archive-keyring.gpg").exists():
        return "the ARM lane needs Debian's archive keyring (/usr/share/keyrings/debian-archive-keyring.gpg)"
    return None


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:6]))} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def _apt_download(root: Path, arch: str, packages: list[str]) -> list[Path]:
    """The .debs of ``packages`` and everything they depend on, for ``arch``, resolved by apt as
    if nothing were installed (a private state folder: the host's package database is not used)."""
    for d in ("state", "lists/partial", "cache/archives/partial", "sources"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "state" / "status").touch()
    (root / "empty.list").touch()
    (root / "sources" / "debian.sources").write_text(DEBIAN_SOURCES)
    (root / "apt.conf").write_text("\n".join([
        f'Dir::State "{root}/state";', f'Dir::State::Lists "{root}/lists";', f'Dir::State::status "{root}/state/status";',
        f'Dir::Cache "{root}/cache";', f'Dir::Etc::SourceList "{root}/empty.list";',
        f'Dir::Etc::SourceParts "{root}/sources";', f'APT::Architecture "{arch}";', f'APT::Architectures {{ "{arch}"; }};',
        'APT::Sandbox::User "root";', ""]))
    env = dict(os.environ, APT_CONFIG=str(root / "apt.conf"), DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update", "-q"], env=env, timeout=900)
    _run(["apt-get", "install", "-y", "-q", "--download-only", "--no-install-recommends", *packages], env=env, timeout=1800)
    return sorted((root / "cache" / "archives").glob("*.deb"))


def _unpack(debs: list[Path], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(into)], timeout=600)


def _pip_target(into: Path, requirements: list[str]) -> None:
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-warn-conflicts", "--target", str(into), *WHEEL_TAGS,
          "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
          *requirements], timeout=1800)


@dataclasses.dataclass(frozen=True)
class Emulator:
    """The prepared folder; ``run`` executes a command on an emulated CPU."""

    root: Path

    @classmethod
    def prepare(cls, cache: Path | None = None, say=print) -> "Emulator":
        """Build the emulator in the cache (once; minutes, mostly downloads) and return it."""
        cache = cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgecn-arm"
        key = hashlib.sha256(RECIPE.encode()).hexdigest()[:12]
        root = cache / key
        if (root / ".complete").exists():
            return cls(root)
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        say("arm lane: fetching qemu-user-static and proot (host .debs)")
        _unpack([d for d in _apt_download(root / "apt-host", "amd64", HOST_PACKAGES)
                 if d.name.split("_")[0] in ("qemu-user-static", "proot", "libtalloc2")], root / "tools")
        say("arm lane: fetching Debian arm64 python3.11 and g++ (.debs)")
        _unpack(_apt_download(root / "apt-guest", "arm64", GUEST_PACKAGES), root / "sysroot")
        for d in ("proc", "sys", "dev", "tmp"):
            (root / "sysroot" / d).mkdir(exist_ok=True)
        shutil.rmtree(root / "apt-host")
        shutil.rmtree(root / "apt-guest")
        say("arm lane: installing aarch64 wheels")
        for name, requirements in SITES.items():
            _pip_target(root / f"site-{name}", requirements)
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(root / "wheels"), *WHEEL_TAGS,
              "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
              f"executorch=={EXECUTORCH}"], timeout=1800)
        _run(["cc", "-O2", "-static", str(HERE / "nofaccessat2.c"), "-o", str(root / "nofaccessat2")], timeout=300)
        for cpu, (part, features) in CPUS.items():
            core = (f"processor\t: {{n}}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                    f"CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 0\n\n")
            (root / f"cpuinfo-{cpu}").write_text("".join(core.format(n=n) for n in range(2)))
        (root / ".complete").write_text(RECIPE)
        return cls(root)

    @property
    def executorch_wheel(self) -> Path:
        return next((self.root / "wheels").glob(f"executorch-{EXECUTORCH}-*.whl"))

    def run(self, argv: list[str], cpu: str = "cortex-a72", site: str = "litert", env: dict | None = None,
            timeout: int = 900) -> subprocess.CompletedProcess:
        """``argv`` (guest paths; the host's /tmp and this checkout at /edgecn are visible) on ``cpu``."""
        tools = self.root / "tools" / "usr"
        qemu = f"{self.root / 'nofaccessat2'} {tools / 'bin' / 'qemu-aarch64-static'} -cpu {cpu}"
        guest_env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                     "PYTHONPATH": f"/edgecn:{self.root / f'site-{site}'}", **(env or {})}
        host_env = {**guest_env, "LD_LIBRARY_PATH": str(tools / "lib" / "x86_64-linux-gnu"), "PROOT_NO_SECCOMP": "1",
                    "PROOT_TMP_DIR": str(self.root)}
        words = [str(tools / "bin" / "proot"), "-q", qemu, "-r", str(self.root / "sysroot"),
                 "-b", "/proc", "-b", "/sys", "-b", "/dev", "-b", "/tmp", "-b", f"{REPO}:/edgecn",
                 "-b", f"{self.root / f'cpuinfo-{cpu}'}:/proc/cpuinfo", "-b", str(self.root), "-w", "/tmp", *argv]
        return subprocess.run(words, capture_output=True, text=True, env=host_env, timeout=timeout)
