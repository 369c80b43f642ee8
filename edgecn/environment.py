"""The environment as input: every variable edgecn reads is read and checked here.

A variable is input the user (or a launcher, or a shell profile) gave, so it gets what a file
or an option gets: one clear error naming the variable, its value and the fix, never an
internal error deep in the code that uses it. Folders (the cache, user targets, user
calibration recipes) must be paths a folder can be at: not empty, not too long, not a file,
not a link loop; the cache must be creatable. torchrun's variables must be whole numbers that
agree with each other. A program (the native .pte runner) must be an executable file.

Torch-free: the device runner uses it too.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from edgecn.errors import EdgecnError

CACHE = "EDGECN_CACHE_DIR"
TARGETS = "EDGECN_TARGETS_DIR"
CALIBRATION = "EDGECN_CALIBRATION_DIR"
PTE_RUNNER = "EDGECN_PTE_RUNNER"
MAX_PATH = 4096
"""Longest path accepted from the environment (Linux's PATH_MAX); each part at most 255 bytes."""


def _shown(value: str) -> str:
    from edgecn.terminal import visible

    return repr(visible(value if len(value) <= 120 else value[:100] + "..." + value[-12:]))


def _fail(name: str, value: str, problem: str, fix: str) -> EdgecnError:
    return EdgecnError(f"${name} is {_shown(value)}, {problem}", f"{fix}, or unset {name}")


def _expand(value: str) -> Path:
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~someone who has no home here: taken as written
        return Path(value)


def folder(name: str, default: Path | None = None) -> Path | None:
    """``$name`` as a folder path (``default`` when unset or empty), checked; the folder need not exist."""
    value = os.environ.get(name)
    if not value:
        return default
    fix = f"set {name} to a folder"
    if "\0" in value:
        raise _fail(name, value, "which holds a NUL byte", fix)
    raw = os.fsencode(value)
    if len(raw) > MAX_PATH or any(len(part) > 255 for part in raw.split(b"/")):
        raise _fail(name, value, f"longer than a path can be ({MAX_PATH} bytes, 255 a part)", fix)
    path = _expand(value)
    try:
        os.stat(path)
    except FileNotFoundError:
        return path  # created when first needed
    except OSError as e:
        problem = ("a link loop" if e.errno == errno.ELOOP else "under a file, not a folder"
                   if e.errno == errno.ENOTDIR else f"which cannot be read ({e.strerror})")
        raise _fail(name, value, problem, fix) from None
    if not path.is_dir():
        raise _fail(name, value, "a file, not a folder", fix)
    return path


def cache_dir() -> Path:
    """The root of edgecn's caches: ``$EDGECN_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgecn``, else ``~/.cache/edgecn``.

    Native runner builds, calibration ranges and cost tables live under it. Not created here.
    """
    explicit = folder(CACHE)
    if explicit is not None:
        return explicit
    xdg = folder("XDG_CACHE_HOME")
    if xdg is not None:
        return xdg / "edgecn"
    try:
        home = Path.home()
    except (KeyError, RuntimeError):  # no HOME and no passwd entry
        raise EdgecnError("there is no home folder for edgecn's cache ($HOME is unset)",
                          f"set {CACHE} to a folder you can write to") from None
    return home / ".cache" / "edgecn"


def ensure_cache_folder(path: Path) -> Path:
    """Create ``path`` (a folder under ``cache_dir()``); an error names where the cache root came from and the fix."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as e:
        source = f"${CACHE}" if os.environ.get(CACHE) else "the default (under $XDG_CACHE_HOME or $HOME)"
        raise EdgecnError(f"cannot use the cache folder {_shown(str(path))}, from {source}: {e.strerror or e}",
                          f"set {CACHE} to a folder you can write to") from None
    return path


def program(name: str) -> Path | None:
    """``$name`` as an executable file, or None when unset."""
    value = os.environ.get(name)
    if not value:
        return None
    import stat

    path = _expand(value)
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # missing, too long, a loop, a NUL byte
        regular = False
    if not regular or not os.access(path, os.X_OK):
        raise _fail(name, value, "which is not an executable file", f"point {name} at a built program")
    return path


def integer(name: str, default: int, lo: int, hi: int) -> int:
    """``$name`` as a whole number in [lo, hi] (``default`` when unset)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    text = value.strip()
    if not (text.isdigit() or (text[:1] in "+-" and text[1:].isdigit())) or len(text) > 12 or not lo <= int(text) <= hi:
        raise _fail(name, value, f"not a whole number from {lo} to {hi}",
                    f"set {name} to one (torchrun sets it for each process)")
    return int(text)


def distributed() -> tuple[int, int, int, int]:
    """(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) as torchrun sets them, checked to agree.

    Unset, they describe one process. Set by hand (or left over in a shell), they must still
    describe a process group: 0 <= RANK < WORLD_SIZE, 0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE.
    """
    world = integer("WORLD_SIZE", 1, 1, 65536)
    rank = integer("RANK", 0, 0, 65535)
    local_world = integer("LOCAL_WORLD_SIZE", world, 1, 65536)  # unset: one machine holds them all
    local = integer("LOCAL_RANK", 0, 0, 65535)
    problem = (f"RANK {rank} is not below WORLD_SIZE {world}" if rank >= world else
               f"LOCAL_RANK {local} is not below LOCAL_WORLD_SIZE {local_world}" if local >= local_world else
               f"LOCAL_WORLD_SIZE {local_world} is above WORLD_SIZE {world}" if local_world > world else None)
    if problem:
        raise EdgecnError(f"the torchrun variables disagree: {problem}",
                          "launch with torchrun (it sets them), or unset RANK, WORLD_SIZE, LOCAL_RANK and "
                          "LOCAL_WORLD_SIZE for one process")
    return rank, world, local, local_world
