"""Atomic writes and hashing: a failed or interrupted write never replaces a good file."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from edgecn.errors import EdgecnError


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def set_aside(path: str | os.PathLike) -> Path:
    """Move a bad cache entry (a file, a folder, a link) out of the way as ``NAME.bad``, replacing
    an older one; returns where it went. Kept, not deleted: it may be worth a look."""
    path = Path(path)
    bad = path.with_name(path.name + ".bad")
    if bad.is_dir() and not bad.is_symlink():
        shutil.rmtree(bad, ignore_errors=True)
    elif os.path.lexists(bad):
        bad.unlink()
    os.replace(path, bad)
    return bad


def write_error(path: Path, e: OSError) -> EdgecnError:
    """An OSError at a write as a user error whose fix fits its cause."""
    fixes = {errno.ENOSPC: "free some disk space or choose another output location",
             errno.EDQUOT: "free some disk space or choose another output location",
             errno.ENAMETOOLONG: "choose a shorter file or folder name",
             errno.EROFS: "choose an output location on a writable file system",
             errno.EACCES: "choose an output location you can write to",
             errno.EPERM: "choose an output location you can write to",
             errno.ENOTDIR: "a part of the path is a file: choose another output location",
             errno.EISDIR: "a folder has that name: choose another output name",
             errno.EFBIG: "raise the file-size limit (`ulimit -f unlimited`) or write somewhere it does not apply"}
    if e.errno == errno.EFBIG or "File too large" in str(e):
        return EdgecnError(f"could not write {str(path)!r}: the file-size limit (ulimit -f, {_size_limit()}) was reached",
                           fixes[errno.EFBIG])
    limit = _size_limit()
    note = f" (a file-size limit of {limit} is set: ulimit -f)" if limit not in ("unlimited", "unknown") else ""
    return EdgecnError(f"could not write {str(path)!r}: {e.strerror or e}{note}",
                       fixes.get(e.errno, "choose another output location"))


def _size_limit() -> str:
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return "unlimited" if soft == resource.RLIM_INFINITY else f"{soft:,} bytes"
    except (ImportError, OSError, ValueError):
        return "unknown"


def check_size_limit(need: int, what: str) -> None:
    """Refuse up front when ``ulimit -f`` is below what ``what`` writes (about ``need`` bytes).

    Python's own writes turn a limit into an error that names it, but the converters are
    native code: LiteRT's ends the whole process with status 1 and no message when a
    temporary file reaches the limit. So a build checks the limit before any work.
    """
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        return
    if soft != resource.RLIM_INFINITY and soft < need:
        raise EdgecnError(f"{what} writes files of up to about {need >> 20} MiB, more than the file-size limit of "
                          f"{soft:,} bytes (ulimit -f)", "raise it (`ulimit -f unlimited`) or run where it does not apply")


def writes_fail_past_size_limit() -> None:
    """Make a write past ``ulimit -f`` fail with EFBIG instead of killing the process.

    The default action of SIGXFSZ ends the process at once (core dumped, exit 153) in the
    middle of a write: no message, and a temporary file left behind. Ignored, the write
    returns EFBIG, which ``write_error`` names, and every clean-up runs. Called by both CLIs.
    """
    import signal

    if hasattr(signal, "SIGXFSZ"):
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except ValueError:  # not the main thread: the embedding program decides
            pass


def _umask() -> int:
    """This process's umask, read without changing it where Linux allows (os.umask sets as it reads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    """A hidden prefix beside ``path`` that stays short (a 253-character name must still get a temp name)."""
    name = path.name if len(path.name) <= 64 else path.name[:40] + "-" + hashlib.sha256(path.name.encode()).hexdigest()[:12]
    return f".{name}."


def _check_parent_writable(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgecnError(f"cannot create folder {str(parent)!r}: {e.strerror}",
                          "choose an output location you can write to") from e
    if not os.access(parent, os.W_OK):
        raise EdgecnError(f"folder {str(parent)!r} is not writable",
                          "choose an output location you can write to")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success its content lands at ``path``, the one write path of edgecn.

    - A regular file (or a new name) is replaced atomically: the temporary file is created
      exclusively (``mkstemp``: a fresh name, never opened through an existing one) beside it.
    - A symlink is written through: its target is replaced atomically and the link survives.
    - A character device or FIFO (``/dev/null``, ``/dev/stdout``, a named pipe) is written to as
      a stream after the content is complete, never replaced by a file; the temporary file then
      lives in a private temporary folder. Sockets and block devices are refused.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path``
    is left exactly as it was.
    """
    path = Path(path)
    kind = _output_kind(path)
    if kind == "stream":
        try:
            with _stream_output(path) as tmp:
                yield tmp
        except OSError as e:  # the content could not be made (a full disk): the device or FIFO got nothing
            raise write_error(path, e) from e
        return
    if kind == "link":
        path = _link_target(path)
    _check_parent_writable(path)
    try:
        if path.is_dir():
            raise EdgecnError(f"{str(path)!r} is a folder", "choose another output file name")
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from e
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; files edgecn writes are the user's, shared as usual
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise write_error(path, e) from e
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _output_kind(path: Path) -> str:
    """"file" (a regular file, a folder or nothing yet), "link" or "stream"; EdgecnError for what cannot take output."""
    import stat

    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet (the folder check says the rest)
        return "file"
    except OSError as e:
        raise write_error(path, e) from e
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return "stream"
    if stat.S_ISSOCK(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise EdgecnError(f"{str(path)!r} is a {'socket' if stat.S_ISSOCK(st.st_mode) else 'block device'}, "
                          "not a file edgecn can write", "choose a file name for the output")
    return "file"


def _link_target(path: Path) -> Path:
    """Where a symlink output really goes (the link itself is kept); a stream target is refused here."""
    try:
        target = Path(os.path.realpath(path, strict=False))
    except (OSError, RuntimeError) as e:  # a link loop
        raise EdgecnError(f"output {str(path)!r} is a link that cannot be followed ({e})",
                          "remove the link or choose another output name") from e
    if target.is_symlink():  # realpath stops at a loop without an error on some Pythons
        raise EdgecnError(f"output {str(path)!r} is a link that cannot be followed (a loop)",
                          "remove the link or choose another output name")
    if _output_kind(target) == "stream":
        raise EdgecnError(f"output {str(path)!r} is a link to the device or pipe {str(target)!r}",
                          "name the device itself, or choose a file name")
    return target


@contextlib.contextmanager
def _stream_output(path: Path) -> Iterator[Path]:
    """A private temporary file; when complete, its bytes are written to the device or FIFO ``path``."""
    folder = tempfile.mkdtemp(prefix="edgecn-out-")  # 0700: nobody else can plant or read the temporary file
    tmp = Path(folder) / "output"
    tmp.touch(mode=0o600, exist_ok=False)
    try:
        yield tmp
        try:
            with open(tmp, "rb") as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except OSError as e:
            raise write_error(path, e) from e
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, owned: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a fresh staging folder; on success it replaces folder ``path`` as a whole.

    The old folder is moved aside and deleted only after the new one is in place, so
    an interruption at any point leaves either the old or the new folder complete. The swap
    holds a lock beside the folder, so two processes writing the same folder take turns.

    Args:
        path: the folder to write.
        owned: says whether an existing ``path`` is one edgecn wrote (and may replace). What
            is not (a file, a link, a user's own folder) is refused before any work starts.
    """
    path = Path(path)
    _check_parent_writable(path)
    with _swap_lock(path):  # another process may be swapping this folder right now
        _refuse_foreign(path, owned)
    _remove_abandoned_stages(path)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".partial",
                                      dir=path.parent))
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; a build folder is copied onto devices and into apps
    except OSError as e:
        raise write_error(path, e) from e
    try:
        yield stage
        with _swap_lock(path):
            _refuse_foreign(path, owned)
            old = None
            if path.exists():
                old = path.with_name(f"{_temp_prefix(path)}old-{os.getpid()}")
                os.replace(path, old)
            os.replace(stage, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise write_error(path, e) from e
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _refuse_foreign(path: Path, owned: Callable[[Path], bool] | None) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_symlink() or not path.is_dir():
        raise EdgecnError(f"{str(path)!r} exists and is {'a link' if path.is_symlink() else 'not a folder'}; "
                          "edgecn replaces only build folders it wrote", "move it away or choose another --out")
    if owned is not None and not owned(path):
        raise EdgecnError(f"{str(path)!r} exists and is not a folder edgecn wrote; edgecn replaces only its own",
                          "move it away or choose another --out")


@contextlib.contextmanager
def _swap_lock(path: Path):
    """An exclusive lock on the folder that holds ``path`` (POSIX flock on the folder itself, so no
    lock file is left behind); a no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a folder we may write but not read: swap unlocked, as before
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


_CLAIMS: set[int] = set()
"""Descriptors holding a ``claim_folder`` lock in this process."""


def _drop_claims_in_child() -> None:
    # A forked child (a DataLoader worker) shares the parent's descriptor, and an flock lasts
    # while any copy is open: a worker outliving a killed parent would hold the run folder.
    for fd in list(_CLAIMS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _CLAIMS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_claims_in_child)


@contextlib.contextmanager
def claim_folder(path: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold folder ``path`` for one writer for the whole block; a second is refused at once.

    Two runs writing one folder (``edgecn train --out runs/x`` started twice) would each
    write whole files, but interleave them: a ``best.pt`` of one run beside the ``final.pt``
    of the other. The claim is a non-blocking POSIX flock on the folder itself (no lock
    file is left; the kernel drops it when the process dies, however it dies). A folder
    made for the claim is removed again if the block leaves it empty.
    """
    path = Path(path)
    made = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise write_error(path, e) from e
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no flock on this platform: one writer is the user's to ensure
            pass
        except BlockingIOError:
            raise EdgecnError(f"another {what} is writing {str(path)!r} right now",
                              "wait for it to finish, or choose another --out") from None
        _CLAIMS.add(fd)
        yield path
    finally:
        _CLAIMS.discard(fd)
        os.close(fd)
        if made:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if the block wrote nothing there


def _remove_abandoned_stages(path: Path) -> None:
    """Delete staging folders of ``path`` left by killed processes (their pid is gone)."""
    prefix = _temp_prefix(path)
    for stage in path.parent.glob(f"{glob.escape(prefix)}*.partial"):
        pid = stage.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stage, ignore_errors=True)
    for old in path.parent.glob(f"{glob.escape(prefix)}old-*"):  # a swap killed between its two renames
        pid = old.name[len(prefix) + 4:]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
