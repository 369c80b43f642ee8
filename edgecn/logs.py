"""Other libraries' logs go to a file, not the user's terminal.

Converters write progress and C++ logs (absl, oneDNN, LiteRT) straight to file descriptors 1
and 2, below Python's ``sys.stdout``, so they are captured at the descriptors: they land in a
log file, and what edgecn prints (a table, or JSON a program reads) stays clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def native_output_to(path: str | os.PathLike) -> Iterator[Path]:
    """Send everything written to fds 1 and 2 (Python's and native code's) to ``path`` (appended)."""
    path = Path(path)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    text = open(path, "a", buffering=1, errors="replace")  # Python's own writes, wherever sys.stdout points
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            yield path
    finally:
        _flush_c_stdio()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)
        _repoint_logging(text)
        text.close()


def _repoint_logging(stream) -> None:
    """Point logging handlers made while output was captured (a library's first log call sets
    one up on the stderr of that moment) back at the real stderr: the capture file closes
    here, and every later message would otherwise end in "I/O operation on closed file"."""
    import logging

    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:
        for handler in lg.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
                handler.setStream(sys.stderr)


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers, so native output written before the swap back lands in the log."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def tail(path: str | os.PathLike, lines: int = 5) -> str:
    """The last ``lines`` lines of a log file ('' when it cannot be read)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
