"""``--remote ssh://user@host[:port]``: copy the runner and the artifacts to a device, profile there, bring JSON back.

Torch-free. The runner travels as a zip of the torch-free files (edgecn/__init__.py,
edgecn/errors.py, edgecn/splits.py, edgecn/runner/*.py) that the device's python imports with zipimport.
ssh and scp are run with argument lists; the one command string the remote shell sees is
built with shlex.quote, and artifacts are copied under generated names, so no file name
ever reaches a shell.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
import urllib.parse
import zipfile
from pathlib import Path

import edgecn
from edgecn.errors import EdgecnError
from edgecn.runner.manifest import find_manifest_for

ZIP_NAME = "edgecn_runner.zip"
TORCH_FREE_CORE = ("__init__.py", "errors.py", "splits.py")
"""Modules outside edgecn/runner that the runner imports; tests check nothing else is needed."""
_SAFE_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9._/-]+$")


def parse_target(url: str) -> tuple[str, int | None]:
    """``ssh://user@host[:port]`` -> ("user@host", port)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname or parts.path not in ("", "/"):
        raise EdgecnError(f"--remote {url!r} is not ssh://[user@]host[:port]", "pass e.g. --remote ssh://pi@raspberrypi.local")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return (f"{parts.username}@{host}" if parts.username else host), parts.port


def runner_zip(out: Path) -> Path:
    """The torch-free runner as a zip importable from PYTHONPATH."""
    pkg = Path(edgecn.__file__).resolve().parent
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for f in [*(pkg / name for name in TORCH_FREE_CORE), *sorted((pkg / "runner").glob("*.py"))]:
            z.write(f, f"edgecn/{f.relative_to(pkg).as_posix()}")
    return out


class Ssh:
    """ssh/scp with the user's key and options; every call is an argument list."""

    def __init__(self, url: str, key: str | None, options: list[str]):
        self.dest, self.port = parse_target(url)
        self.common = (["-i", key] if key else []) + [a for o in ["BatchMode=yes", *options] for a in ("-o", o)]

    def run(self, words: list[str], check: bool = True) -> subprocess.CompletedProcess:
        port = ["-p", str(self.port)] if self.port else []
        command = " ".join(shlex.quote(w) for w in words)
        proc = subprocess.run(["ssh", *self.common, *port, self.dest, "--", command], capture_output=True, text=True)
        if check and proc.returncode != 0:
            self._fail(proc, words[0])
        return proc

    def copy(self, files: list[Path], remote_dir: str) -> None:
        port = ["-P", str(self.port)] if self.port else []
        # Absolute local paths: scp would take "a:b.tflite" for a host. Remote names are generated and safe.
        proc = subprocess.run(["scp", "-q", *self.common, *port, *[os.path.abspath(f) for f in files],
                               f"{self.dest}:{remote_dir}/"], capture_output=True, text=True)
        if proc.returncode != 0:
            self._fail(proc, "scp")

    def _fail(self, proc, what: str) -> None:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        if proc.returncode == 2 and "edgecn profile: error:" in proc.stderr:
            raise EdgecnError(f"on {self.dest}: {last.split('error: ', 1)[1]}")
        raise EdgecnError(f"{what} on {self.dest} failed (exit {proc.returncode}): {last}",
                          "check that `ssh` to the device works with the same key and options, "
                          "and that --remote-python has numpy and a runtime")


def _stage(artifacts: list[str], stage: Path, force: bool) -> list[str]:
    """Copy each artifact under a generated name, with a manifest rewritten to that name (sha256 re-checked remotely)."""
    from edgecn.runner.check import check_artifact
    from edgecn.runner.profile import verify

    names = []
    for i, a in enumerate(artifacts):
        path = Path(a)
        verify(path, force)
        check_artifact(path)
        sub = stage / f"a{i}"
        sub.mkdir()
        name = f"model{path.suffix.lower()}"
        (sub / name).symlink_to(path.resolve())
        manifest = find_manifest_for(path)
        if manifest is not None:
            raw = dict(manifest.raw, artifacts=[dict(manifest.find(path).raw, path=name)])
            (sub / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
        names.append(f"a{i}/{name}")
    return names


def profile_remote(args) -> dict:
    """Profile ``args.artifacts`` on ``args.remote``; returns the device's JSON document."""
    ssh = Ssh(args.remote, args.ssh_key, args.ssh_option)
    remote_dir = ssh.run(["mktemp", "-d"]).stdout.strip()
    if not _SAFE_REMOTE_DIR.match(remote_dir):
        raise EdgecnError(f"unexpected temp folder {remote_dir!r} on {ssh.dest}", "check the device's mktemp")
    try:
        with tempfile.TemporaryDirectory(prefix="edgecn-remote-") as tmp:
            stage = Path(tmp)
            names = _stage(args.artifacts, stage, args.force)
            ssh.run(["mkdir", *[f"{remote_dir}/{n.split('/')[0]}" for n in names]])
            ssh.copy([runner_zip(stage / ZIP_NAME)], remote_dir)
            for n in names:
                ssh.copy(sorted((stage / n.split("/")[0]).iterdir()), f"{remote_dir}/{n.split('/')[0]}")
        words = ["env", f"PYTHONPATH={remote_dir}/{ZIP_NAME}", args.remote_python, "-m", "edgecn.runner",
                 *[f"{remote_dir}/{n}" for n in names], "--json", *_passthrough(args)]
        proc = ssh.run(words, check=False)
        if proc.returncode != 0:
            ssh._fail(proc, args.remote_python)
        doc = json.loads(proc.stdout)
    finally:
        ssh.run(["rm", "-rf", remote_dir], check=False)
    for r, a in zip(doc["results"], [a for a in args.artifacts for _ in (args.threads or "x").split(",")]):
        r["remote"] = {"host": ssh.dest, "path": r["artifact"]}
        r["artifact"], r["name"] = str(a), Path(a).name
    return doc


def _passthrough(args) -> list[str]:
    out = ["--warmup", str(args.warmup)]
    for flag, value in (("--runs", args.runs), ("--duration", args.duration), ("--fps", args.fps),
                        ("--threads", args.threads)):
        if value is not None:
            out += [flag, str(value)]
    if args.data and args.data != "digits":
        raise EdgecnError("--data FOLDER is not copied to remote devices", "use --data digits, or copy the folder and run there")
    if args.data:
        out += ["--data", args.data]
    out += [f for f, on in (("--accuracy", args.accuracy), ("--op-profile", args.op_profile), ("--force", args.force)) if on]
    return out
