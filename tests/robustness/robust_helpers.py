"""Shared pieces of the robustness tests: running the real CLI, hashing folders, damaging files, counting.

Every run goes through ``python -m edgecn`` in its own process, as a user would, so a
traceback, a wrong exit status or a half-written file shows up exactly as it would for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import resource
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

COUNTS: Counter = Counter()
"""What the session tried: ``bad_inputs`` (CLI cases), ``mutations`` (fuzzed parser inputs), ``kills``."""

FULL_DISK_BYTES = 64 * 1024


def edgecn(args, cwd: Path, timeout: float = 300, env: dict | None = None, preexec=None) -> subprocess.CompletedProcess:
    """Run ``python -m edgecn ARGS`` in ``cwd`` and capture its output."""
    return subprocess.run([sys.executable, "-m", "edgecn", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**ENV, **(env or {})}, preexec_fn=preexec)


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest); links are followed."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def leftovers(root: Path) -> list[str]:
    """Temporary or staging files that an atomic write should have removed."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.name.endswith((".tmp", ".partial")) or ".old-" in p.name)


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


def flipped(data: bytes, seed: int, count: int = 64) -> bytes:
    """``data`` with ``count`` random bytes overwritten (seeded)."""
    rng = random.Random(seed)
    b = bytearray(data)
    for _ in range(count):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def garbage(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# -- a full disk -----------------------------------------------------------------------------
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root in most containers; not everywhere)."""
    probe = Path(f"/tmp/.edgecn-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    except FileNotFoundError:
        return False
    finally:
        probe.rmdir()


@contextlib.contextmanager
def small_filesystem(path: Path, size: int = FULL_DISK_BYTES, read_only: bool = False):
    """Mount a ``size``-byte tmpfs at ``path`` (read-only if asked) for the duration of the block."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def file_size_limit(limit: int = FULL_DISK_BYTES):
    """A ``preexec_fn`` that makes every write past ``limit`` bytes fail with EFBIG, like a full disk.

    SIGXFSZ is ignored so the write returns an error instead of killing the process.
    """

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply
