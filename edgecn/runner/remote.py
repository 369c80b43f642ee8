"""``--remote ssh://user@host[:port]``: copy the runner and the artifacts to a device, profile there, bring JSON back.

Torch-free. The runner travels as a zip of the torch-free files (edgecn/__init__.py,
edgecn/environment.py, edgecn/errors.py, edgecn/fileio.py, edgecn/limits.py, edgecn/metrics.py, edgecn/registry.py,
edgecn/splits.py, edgecn/terminal.py, edgecn/runner/*.py) that the device's python imports with zipimport.
ssh and scp are run with argument lists; the one command string the remote shell sees is
built with shlex.quote, and artifacts are copied under generated names, so no file name
ever reaches a shell.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import edgecn
from edgecn.errors import EdgecnError
from edgecn.runner.manifest import find_manifest_for
from edgecn.limits import read_file
from edgecn.runner.spec import MAX_SPEC_BYTES, sidecar

ZIP_NAME = "edgecn_runner.zip"
TORCH_FREE_CORE = ("__init__.py", "environment.py", "errors.py", "fileio.py", "limits.py", "metrics.py", "registry.py",
                   "splits.py", "terminal.py")
"""Modules outside edgecn/runner that the runner imports; tests check nothing else is needed."""
_REMOTE_DIR = re.compile(r"/(?:[A-Za-z0-9_][A-Za-z0-9._-]*/)*edgecn\.[A-Za-z0-9]{10}")
"""What the device's mktemp may answer: an absolute path to a folder named edgecn.XXXXXXXXXX, no
'..', nothing a shell reads. Only such a folder is ever removed (rm -rf) on a device."""


_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?)*\.?$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]{2,45}$")
_TARGET_HELP = "pass ssh://USER@HOST[:PORT] or USER@HOST[:PORT], e.g. --remote pi@raspberrypi.local"


def parse_target(url: str) -> tuple[str, int | None]:
    """``ssh://user@host[:port]`` or ``user@host[:port]`` -> ("user@host", port), each part checked.

    ssh reads a destination that starts with ``-`` as an option (``-oProxyCommand=...`` runs a
    local command), so user and host are held to what accounts and host names can be: letters,
    digits, ``_ . -`` (not leading), IPv6 in brackets; the port is 1-65535. Nothing else passes.
    """
    text = url[len("ssh://"):] if url.startswith("ssh://") else url
    text = text[:-1] if text.endswith("/") else text
    if "://" in text or not text:
        raise EdgecnError(f"--remote {url!r} is not ssh://[user@]host[:port]", _TARGET_HELP)
    user, _, hostport = text.rpartition("@")
    if user and not _USER.fullmatch(user):
        raise EdgecnError(f"--remote {url!r}: user {user!r} is not a login name "
                          "(letters, digits, '_', '.', '-', not starting with '-')", _TARGET_HELP)
    host, port_text = _split_port(hostport, url)
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise EdgecnError(f"--remote {url!r}: port {port_text!r} is not a number from 1 to 65535", _TARGET_HELP)
        port = int(port_text)
    return (f"{user}@{host}" if user else host), port


def _split_port(hostport: str, url: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        inner, sep, rest = hostport[1:].partition("]")
        if not sep or not _IPV6.fullmatch(inner) or ":" not in inner or (rest and not rest.startswith(":")):
            raise EdgecnError(f"--remote {url!r}: {hostport!r} is not a bracketed IPv6 address", _TARGET_HELP)
        return f"[{inner}]", (rest[1:] if rest else None)
    host, sep, port = hostport.partition(":")
    if not _HOST.fullmatch(host) or len(host) > 253:
        raise EdgecnError(f"--remote {url!r}: host {host!r} is not a host name or address", _TARGET_HELP)
    return host, (port if sep else None)


def runner_zip(out: Path) -> Path:
    """The torch-free runner as a zip importable from PYTHONPATH."""
    pkg = Path(edgecn.__file__).resolve().parent
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        native = pkg / "runner" / "native"  # the .pte runner's source: the device compiles it for itself
        for f in [*(pkg / name for name in TORCH_FREE_CORE), *sorted((pkg / "runner").glob("*.py")),
                  *sorted(native.glob("*.py")), *sorted(native.glob("*.cpp")),
                  *sorted((pkg / "runner" / "data").glob("*.npz"))]:
            z.write(f, f"edgecn/{f.relative_to(pkg).as_posix()}")
    return out


CONNECT_TIMEOUT_S = 15
"""Seconds ssh waits for a device to answer before giving up (ssh's ConnectTimeout)."""
SHORT_CALL_S = 120.0
"""Bound on one short call on the device (the runtime probe, mktemp, mkdir, rm)."""


class Ssh:
    """ssh/scp with the user's key and options; every call is an argument list."""

    def __init__(self, url: str, key: str | None, options: list[str], accept_new_host_key: bool = False):
        self.dest, self.port = parse_target(url)
        # BatchMode: never a password prompt. A device's host key is checked as ssh always does;
        # trusting a new one is the user's visible choice (--accept-new-host-key), never a default.
        options = ["BatchMode=yes", *(["StrictHostKeyChecking=accept-new"] if accept_new_host_key else []), *options]
        # An unreachable device fails in seconds, not after the system's TCP timeout (minutes);
        # an explicit --ssh-option ConnectTimeout=N wins.
        if not any(o.lower().startswith("connecttimeout") for o in options):
            options.append(f"ConnectTimeout={CONNECT_TIMEOUT_S}")
        # A device that vanishes mid-run (unplugged, rebooted) is noticed in about a minute.
        if not any(o.lower().startswith("serveralive") for o in options):
            options += ["ServerAliveInterval=15", "ServerAliveCountMax=4"]
        self.common = (["-i", key] if key else []) + [a for o in options for a in ("-o", o)]

    def run(self, words: list[str], check: bool = True, stdin=subprocess.DEVNULL,
            timeout: float | None = SHORT_CALL_S) -> subprocess.CompletedProcess:
        """Run ``words`` on the device; ``stdout`` is what the command printed.

        The command prints a random marker first, and only what follows it is kept: a login
        shell that prints a banner or a greeting from its rc files adds nothing to the answer.
        stdin is empty unless given (ssh would otherwise read the user's terminal).
        """
        port = ["-p", str(self.port)] if self.port else []
        marker = f"edgecn-answer-{secrets.token_hex(8)}"
        command = f"printf '%s\\n' {marker}; " + " ".join(shlex.quote(w) for w in words)
        # Every option, then "--": the destination and the command can never be read as options.
        try:
            proc = subprocess.run(["ssh", *self.common, *port, "--", self.dest, command], stdin=stdin,
                                  capture_output=True, encoding="utf-8", errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EdgecnError(f"{words[0]} on {self.dest} did not finish within {timeout:.0f} s",
                              "check that the device is up and not overloaded (`ssh` to it by hand)") from None
        proc.stdout = proc.stdout.partition(marker + "\n")[2]
        if check and proc.returncode != 0:
            self._fail(proc, words[0])
        return proc

    def copy(self, files: list[Path], remote_dir: str, name: str = "") -> None:
        """Copy ``files`` (or one folder, recursively, to ``remote_dir/name``) to the device."""
        port = ["-P", str(self.port)] if self.port else []
        recursive = ["-r"] if len(files) == 1 and Path(files[0]).is_dir() else []
        # Absolute local paths: scp would take "a:b.tflite" for a host. Remote names are generated and safe.
        proc = subprocess.run(["scp", "-q", *recursive, *self.common, *port, "--", *[os.path.abspath(f) for f in files],
                               f"{self.dest}:{remote_dir}/{name}"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            self._fail(proc, "scp")

    def _fail(self, proc, what: str) -> None:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        if proc.returncode == 2 and "edgecn profile: error:" in proc.stderr:
            raise EdgecnError(f"on {self.dest}: {last.split('error: ', 1)[1]}")
        if "Host key verification failed" in proc.stderr:
            raise EdgecnError(f"ssh does not know {self.dest}'s host key (or it changed)",
                              "log in once with `ssh` and check the fingerprint, or pass --accept-new-host-key to "
                              "trust a key seen for the first time (a changed key is still refused)")
        raise EdgecnError(f"{what} on {self.dest} failed (exit {proc.returncode}): {last}",
                          "check that `ssh` to the device works with the same key and options, "
                          "and that --remote-python has numpy and a runtime")


def _stage(artifacts: list[str], stage: Path, force: bool) -> list[str]:
    """Stage each artifact under a generated name: the bytes whose sha256 was checked here (a file,
    not a link: what is copied is what was verified), the manifest rewritten to that name (the
    device checks the sha256 again), or, for an artifact copied alone, the spec it carries."""
    from edgecn.runner.check import check_artifact
    from edgecn.runner.profile import read_verified

    names = []
    for i, a in enumerate(artifacts):
        path = Path(a)
        entry, _, content = read_verified(path, force)
        check_artifact(path, content)
        sub = stage / f"a{i}"
        sub.mkdir()
        name = f"model{path.suffix.lower()}"
        (sub / name).write_bytes(content)
        if sidecar(path).is_file():  # the .pte's spec travels with it
            (sub / sidecar(Path(name)).name).write_bytes(read_file(sidecar(path), "artifact spec", MAX_SPEC_BYTES))
        manifest = find_manifest_for(path) if entry is not None else None
        if manifest is not None and manifest.find(path) is not None:
            raw = dict(manifest.raw, artifacts=[dict(entry.raw, path=name)])
            (sub / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
        names.append(f"a{i}/{name}")
    return names


CANDIDATE_PYTHONS = ("python3", ".venv/bin/python", "venv/bin/python", "edgecn/bin/python", ".local/bin/python3")
"""Where a device's python with a runtime usually is, tried in order when --remote-python is left at
python3 (relative paths are resolved by ssh in the login's home folder)."""
# What each artifact kind needs on the device; the probe prints which of these import there.
PROBE = ("import importlib.util as u, json, shutil\n"
         "has = lambda m: u.find_spec(m) is not None\n"
         "print(json.dumps({'numpy': has('numpy'), '.tflite': has('ai_edge_litert') or has('tflite_runtime'), "
         "'.onnx': has('onnxruntime'), '.engine': has('tensorrt'), '.plan': has('tensorrt'), "
         "'.pte': has('executorch') or any(shutil.which(c) for c in ('c++', 'g++', 'clang++'))}))")
INSTALL_HINT = {".tflite": "pip install 'edgecn[runner]' (ai-edge-litert)", ".onnx": "pip install onnxruntime",
                ".pte": "a C++ compiler for the native .pte runner (sudo apt install g++)",
                ".engine": "JetPack's tensorrt", ".plan": "JetPack's tensorrt"}


def remote_python(ssh: "Ssh", requested: str, suffixes: set[str], say=None) -> str:
    """A python on the device that has numpy and a runtime for every artifact kind in ``suffixes``.

    ``requested`` is tried first; when it is the default ``python3`` and lacks something, the usual
    virtual-environment places are probed too, and the one chosen is said on stderr.
    """
    tried = []
    for python in (requested, *(c for c in CANDIDATE_PYTHONS if c != requested)) if requested == "python3" else (requested,):
        proc = ssh.run([python, "-c", PROBE], check=False)
        if proc.returncode == 255:  # ssh itself failed (unreachable, refused, unknown host key)
            ssh._fail(proc, "ssh")
        try:
            found = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
        except (ValueError, IndexError):
            found = None
        if not isinstance(found, dict):
            tried.append(f"{python} (not found or not runnable)")
            continue
        missing = [k for k in ("numpy", *sorted(suffixes)) if not found.get(k)]
        if not missing:
            if python != requested and say:
                say(f"edgecn: on {ssh.dest}, {requested} lacks a runtime; using ~/{python}")
            return python
        tried.append(f"{python} (lacks {', '.join('numpy' if m == 'numpy' else f'a runtime for {m}' for m in missing)})")
    needs = sorted({INSTALL_HINT.get(s, s) for s in suffixes})
    raise EdgecnError(f"no python on {ssh.dest} can run these artifacts: tried {'; '.join(tried)}",
                      f"on the device, install numpy and {' and '.join(needs)} (e.g. python3 -m venv ~/venv && "
                      "~/venv/bin/pip install 'edgecn[runner]'), or pass --remote-python PATH")


def profile_remote(request) -> dict:
    """Profile a ``session.ProfileRequest`` on its ``remote`` device; returns the device's JSON document.

    Nothing of the run stays on the device: its temporary folder is removed by the command that
    ran there (also when the runner failed, or stopped because the host went away) and again by
    the host; the runner there stops when the host's ssh ends (Ctrl-C, SIGTERM, even SIGKILL of
    the host: see ``session.tether``).
    """
    from edgecn.runner.session import STOP_WITH_INPUT, read_document, tether

    remote = request.remote
    ssh = Ssh(remote.url, remote.ssh_key, list(remote.ssh_options), remote.accept_new_host_key)
    data = _local_data_folder(request.data)
    python = remote_python(ssh, remote.python, {Path(a).suffix.lower() for a in request.artifacts},
                           say=lambda line: print(line, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="edgecn-remote-") as tmp:
        stage = Path(tmp)  # everything is staged here before a folder exists on the device
        names = _stage(list(request.artifacts), stage, request.force)
        runner_zip(stage / ZIP_NAME)
        if data is not None:  # under a generated name: the folder's own name never reaches a shell
            (stage / "data").mkdir()
            stage_data(data, stage / "data", say=lambda line: print(line, file=sys.stderr))
        remote_dir = _remote_temp_dir(ssh)
        try:
            ssh.run(["mkdir", *[f"{remote_dir}/{n.split('/')[0]}" for n in names]])
            ssh.copy([stage / ZIP_NAME], remote_dir)
            for n in names:
                ssh.copy(sorted((stage / n.split("/")[0]).iterdir()), f"{remote_dir}/{n.split('/')[0]}")
            if data is not None:
                ssh.copy([stage / "data"], remote_dir, "data")
            there = request.replace(artifacts=tuple(f"{remote_dir}/{n}" for n in names), remote=None,
                                    data=f"{remote_dir}/data" if data is not None else request.data)
            runner = ["env", f"PYTHONPATH={remote_dir}/{ZIP_NAME}", python, "-m", "edgecn.runner", *there.to_argv(),
                      STOP_WITH_INPUT]
            # sh removes the folder when the runner ends, however it ends: the host may be gone by then.
            words = ["sh", "-c", 'd="$1"; shift; "$@"; s=$?; rm -rf "$d"; exit "$s"', "sh", remote_dir, *runner]
            each = request.bound_seconds()
            bound = None if each is None else each * len(request.artifacts) * len(request.threads or (None,))
            with tether() as stdin:
                proc = ssh.run(words, check=False, stdin=stdin, timeout=bound)
            if proc.returncode not in (0, 3):  # 3: some failed, the rest measured (kept)
                ssh._fail(proc, python)
        finally:
            ssh.run(["rm", "-rf", remote_dir], check=False)
    expected = len(request.artifacts) * len(request.threads or [None])
    doc = read_document(proc.stdout, f"the runner on {ssh.dest}", expected)
    for r, a in zip(doc["results"], [a for a in request.artifacts for _ in (request.threads or [None])]):
        r["remote"] = {"host": ssh.dest, "path": r["artifact"]}
        r["artifact"], r["name"] = str(a), Path(a).name
    return doc


def _remote_temp_dir(ssh: "Ssh") -> str:
    """A new private folder on the device (mktemp -d, in its TMPDIR), its answer checked."""
    proc = ssh.run(["sh", "-c", 'mktemp -d "${TMPDIR:-/tmp}/edgecn.XXXXXXXXXX"'])
    answer = proc.stdout.strip()
    if not _REMOTE_DIR.fullmatch(answer) or "/../" in answer:
        from edgecn.terminal import visible

        raise EdgecnError(f"mktemp on {ssh.dest} answered {visible(answer)[:120]!r}, not a new temporary folder",
                          "check that `mktemp -d` works on the device and that its TMPDIR is a plain path")
    return answer


def _local_data_folder(data: str | None) -> Path | None:
    """``--data FOLDER`` for a remote run: checked here, copied to the device (None for digits or no data)."""
    if not data or data == "digits":
        return None
    folder = Path(data)
    if not folder.is_dir():
        raise EdgecnError(f"--data {data!r} is not a folder", "pass a folder of images (one subfolder per class), or digits")
    return folder


def stage_data(folder: Path, stage: Path, say=None) -> tuple[int, list[str]]:
    """Copy into ``stage`` what the device's runner reads from ``folder``: the image and .npy files
    that are regular files inside it, never following a link (a link could lead to a key or a
    secret outside the folder). Returns (files staged, what was skipped and why); ``say`` tells
    the user about the skipped ones."""
    import shutil
    import stat

    from edgecn.runner.inputs import IMAGE_SUFFIXES

    wanted = IMAGE_SUFFIXES + (".npy",)
    staged, skipped = 0, []
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for d in list(dirnames):
            if (here / d).is_symlink():
                skipped.append(f"{(here / d).relative_to(root)}/ (a link to a folder)")
                dirnames.remove(d)
        dirnames.sort()
        for name in sorted(filenames):
            src = here / name
            rel = src.relative_to(root)
            st = os.lstat(src)
            if stat.S_ISLNK(st.st_mode):
                skipped.append(f"{rel} (a link)")
            elif not stat.S_ISREG(st.st_mode):
                skipped.append(f"{rel} (not a regular file)")
            elif src.suffix.lower() not in wanted:
                skipped.append(f"{rel} (not an image or .npy)")
            else:
                dst = stage / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst, follow_symlinks=False)
                staged += 1
    if skipped and say:
        say(f"edgecn: --data {str(folder)!r}: {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} not sent to the "
            f"device ({'; '.join(skipped[:5])}{'; ...' if len(skipped) > 5 else ''}): only image and .npy files "
            "that are regular files inside the folder go")
    if not staged:
        raise EdgecnError(f"--data {str(folder)!r} holds no image or .npy files that can be sent",
                          f"put {', '.join(wanted)} files there (links are not followed)")
    return staged, skipped
