"""The native ExecuTorch runner: ``.pte`` files without torch.

ExecuTorch's Python binding links libtorch, and torch for aarch64 on the package index is a
427 MB CUDA build. The executorch wheel itself ships the C++ runtime (``lib/libexecutorch*.so``,
XNNPACK included) and its headers, but no runner program; ``pte_runner.cpp`` in this folder is
that program. It is compiled on the machine that runs it, with one command::

    python -m edgecn.runner.native     # needs a C++17 compiler (g++ or clang++)

which compiles against the executorch package if one is installed, and otherwise downloads the
executorch wheel (19 MB, without its dependencies) and keeps only its libraries and headers
(16 MB) in the cache: no torch, no executorch Python package. The binary is cached per
executorch version, install folder and source (``find_binary``); ``edgecn.runner.pte`` drives it
over a pipe. Nothing here imports executorch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from edgecn import environment
from edgecn.errors import EdgecnError

SOURCE_NAME = "pte_runner.cpp"
BINARY_NAME = "edgecn-pte-runner"
ENV_BINARY = environment.PTE_RUNNER
"""An explicit binary (e.g. one built elsewhere for this machine) wins over the cached build."""
VERSION = "1.5.1"
"""The executorch release fetched when none is installed: the one edgecn's build writes .pte files with
(pyproject.toml pins it for the full install); a program and its runtime must match."""
INSTALL = f"pip install --no-deps executorch=={VERSION}"
BUILD = "python -m edgecn.runner.native"
# The libraries the program needs; --no-as-needed keeps the kernel and delegate libraries,
# which register themselves from static initialisers and export nothing the program calls.
LIBRARIES = ("executorch", "executorch_kernels_optimized", "executorch_kernels_quantized",
             "executorch_backend_xnnpack", "executorch_threadpool", "executorch_etdump")


def installed_root() -> Path | None:
    """The installed executorch package folder, found without importing it (its __init__ needs torch)."""
    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def fetched_root() -> Path:
    """Where ``fetch`` keeps the libraries and headers of a downloaded wheel."""
    return cache_dir() / f"executorch-{VERSION}-{platform.machine()}"


def executorch_root() -> Path | None:
    """The executorch libraries and headers to build against: the installed package, else a fetched wheel's."""
    root = installed_root()
    if root is not None:
        return root
    fetched = fetched_root()
    return fetched if (fetched / ".complete").exists() else None


def _version() -> str:
    if installed_root() is None:
        return VERSION if (fetched_root() / ".complete").exists() else "unknown"
    try:
        return importlib.metadata.version("executorch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def fetch(wheel: Path | None = None) -> Path:
    """Unpack the C++ libraries and headers of the executorch wheel into the cache; returns that folder.

    ``wheel``: a wheel file already here (for a device without a network); otherwise pip downloads
    the one for this machine, without dependencies. Unpacked beside and renamed into place, so an
    interrupted fetch leaves nothing half done.
    """
    out = fetched_root()
    if (out / ".complete").exists():
        return out
    environment.ensure_cache_folder(out.parent)
    with tempfile.TemporaryDirectory(prefix=".executorch-", dir=out.parent) as tmp:
        if wheel is None:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", f"executorch=={VERSION}", "--no-deps",
                                   "--only-binary=:all:", "-d", tmp, "-q"], capture_output=True, text=True, timeout=1800)
            wheels = sorted(Path(tmp).glob("executorch-*.whl"))
            if proc.returncode != 0 or not wheels:
                detail = (proc.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
                raise EdgecnError(f"could not download the executorch {VERSION} wheel for {platform.machine()}: {detail}",
                                  f"check the network and that pip works here, or download the wheel elsewhere "
                                  f"(pip download executorch=={VERSION} --no-deps --platform manylinux_2_28_"
                                  f"{platform.machine()} --only-binary=:all:) and pass it: {BUILD} --wheel FILE")
            wheel = wheels[0]
        stage = Path(tmp) / "sdk"
        try:
            with zipfile.ZipFile(wheel) as z:
                members = [m for m in z.namelist() if m.startswith(("executorch/lib/", "executorch/include/"))
                           and ".." not in m.split("/")]
                if not any(m.endswith("lib/libexecutorch.so") for m in members):
                    raise EdgecnError(f"{str(wheel)!r} has no executorch/lib/libexecutorch.so",
                                      f"pass the executorch {VERSION} wheel for this machine ({platform.machine()})")
                for m in members:
                    z.extract(m, stage)
        except (zipfile.BadZipFile, OSError) as e:
            raise EdgecnError(f"could not unpack {str(wheel)!r}: {e}", "download the wheel again") from None
        (stage / "executorch" / ".complete").write_text(f"{VERSION}\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage / "executorch", out)
    return out


def cache_dir() -> Path:
    """``$EDGECN_CACHE_DIR/native`` (default ``~/.cache/edgecn/native``, or under ``$XDG_CACHE_HOME``):
    the same cache root as calibration ranges and cost tables."""
    return environment.cache_dir() / "native"


def source() -> bytes:
    """The C++ source, read as package data (the runner also travels as a zip to remote devices)."""
    return pkgutil.get_data(__name__, SOURCE_NAME)


def code_of(text: bytes) -> bytes:
    """C++ source without its comments, runs of blanks or empty lines: what the compiler sees.

    The binary's name (and so a cost table's runtime fingerprint, which names the runner) is keyed on
    this, so editing a comment neither rebuilds the runner nor drops the segment times measured with it.
    String and character literals are kept byte for byte, ``//`` and blanks inside them included.
    """
    src = text.decode("utf-8")
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c in "\"'":  # a literal: copied through its closing quote, escapes included
            j = i + 1
            while j < n and src[j] not in (c, "\n"):
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith("//", i):
            end = src.find("\n", i)
            i = n if end < 0 else end
        elif src.startswith("/*", i) or c in " \t\r\f\v":
            if c == "/":
                end = src.find("*/", i + 2)
                i = n if end < 0 else end + 2
            else:
                i += 1
            if out and out[-1] not in (" ", "\n"):
                out.append(" ")  # a comment or blanks still separate two tokens
        else:
            out.append(c)
            i += 1
    lines = (line.strip(" ") for line in "".join(out).split("\n"))
    return "\n".join(line for line in lines if line).encode()


def _key(root: Path) -> str:
    """Code, executorch version and install folder: any change means a rebuild (the rpath points there)."""
    h = hashlib.sha256(code_of(source()))
    h.update(f"{_version()}|{root.resolve()}|{platform.machine()}".encode())
    return h.hexdigest()[:16]


def expected_binary() -> Path | None:
    """Where the build for the executorch installed here lives (None: no executorch here)."""
    root = executorch_root()
    if root is None:
        return None
    return cache_dir() / f"{BINARY_NAME}-{_version()}-{platform.machine()}-{_key(root)}"


def find_binary() -> Path | None:
    """The native runner to use: ``$EDGECN_PTE_RUNNER``, else the cached build for this install."""
    explicit = environment.program(ENV_BINARY)
    if explicit is not None:
        return explicit
    path = expected_binary()
    if path is None or not os.path.lexists(path):
        return None
    problem = cache_problem(path)
    if problem is None:
        return path
    from edgecn.fileio import set_aside

    bad = set_aside(path)
    print(f"edgecn: the cached native .pte runner {str(path)!r} {problem}; set aside as {bad.name}, building it again",
          file=sys.stderr)
    return None


def _sidecar(binary: Path) -> Path:
    return binary.with_name(binary.name + ".sha256")


def cache_problem(binary: Path) -> str | None:
    """Why a cached runner must not run (None: it is the one built here, byte for byte).

    A cache is not trusted to be whole: an empty or truncated file, one without its execute
    bit, a folder or a link in its place, a build for another machine, or bytes that differ
    from the sha256 recorded when it was built would otherwise fail in ways that blame the
    artifact, or run something else.
    """
    import stat

    st = os.lstat(binary)
    if not stat.S_ISREG(st.st_mode):
        return "is not a file"
    if st.st_size == 0:
        return "is empty"
    if not os.access(binary, os.X_OK):
        return "is not executable"
    try:
        recorded = _sidecar(binary).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return "has no record of its build (no .sha256 beside it)"
    with open(binary, "rb") as f:
        head = f.read(20)
    if head[:4] == b"\x7fELF" and _elf_machine(head) != _elf_machine_here():
        return "was built for another machine"
    from edgecn.fileio import sha256_file

    if sha256_file(binary) != recorded:
        return "differs from what was built (damaged or replaced)"
    return None


def _elf_machine(head: bytes) -> int | None:
    """e_machine of an ELF header (None: not ELF)."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def _elf_machine_here() -> int | None:
    try:
        with open(sys.executable, "rb") as f:
            return _elf_machine(f.read(20))
    except OSError:
        return None


def compiler() -> str | None:
    """$CXX, else c++, g++ or clang++ on PATH."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def command(root: Path, cxx: str, src: Path, out: Path) -> list[str]:
    """The compile-and-link command (the wheel's own CMake config names the same flags)."""
    lib = root / "lib"
    return [cxx, "-std=c++17", "-O2", "-Wno-deprecated-declarations",
            # The vendored c10 headers otherwise look for a header that only a PyTorch build generates.
            "-DC10_USING_CUSTOM_GENERATED_MACROS", "-DET_EVENT_TRACER_ENABLED",
            f"-I{root / 'include'}", f"-I{root / 'include/executorch/runtime/core/portable_type/c10'}",
            str(src), "-o", str(out), f"-L{lib}", "-Wl,--no-as-needed",
            *[f"-l{name}" for name in LIBRARIES], f"-Wl,-rpath,{lib}", "-pthread"]


def build(out: Path | None = None, cxx: str | None = None, wheel: Path | None = None) -> Path:
    """Compile the native runner against the executorch here (fetching its libraries if need be); returns the binary.

    Written under a temporary name and renamed, so an interrupted build leaves no half a binary.
    """
    cxx = cxx or compiler()
    if cxx is None:
        raise EdgecnError("no C++ compiler found (looked for $CXX, c++, g++, clang++)",
                          "install one (Debian/Raspberry Pi OS: sudo apt install g++), or set CXX")
    root = executorch_root() or fetch(wheel)
    missing = [n for n in LIBRARIES if not (root / "lib" / f"lib{n}.so").exists()]
    if missing or not (root / "include").is_dir():
        raise EdgecnError(f"the executorch at {root} lacks {', '.join(f'lib{n}.so' for n in missing) or 'its headers'}",
                          f"reinstall it ({INSTALL} --force-reinstall), or uninstall it and let `{BUILD}` fetch one")
    out = Path(out) if out else expected_binary()
    environment.ensure_cache_folder(out.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    src = Path(tmp + ".cpp")
    try:
        src.write_bytes(source())
        proc = subprocess.run(command(root, cxx, src, Path(tmp)), capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise EdgecnError(f"compiling the native .pte runner failed:\n{proc.stderr.strip()[-3000:]}",
                              f"check that {cxx} supports C++17 and that executorch {_version()} is installed whole")
        os.chmod(tmp, 0o755)
        from edgecn.fileio import atomic_write_text, sha256_file

        # the record first: a binary without one (a build cut short here) is rebuilt, never trusted
        atomic_write_text(_sidecar(out), sha256_file(tmp) + "\n")
        os.replace(tmp, out)
    finally:
        for leftover in (tmp, src):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return out
