"""Runtimes' own log lines, kept off the profiler's output at the file descriptor they are written to.

LiteRT writes informational lines from C++ straight to file descriptor 2, below Python's
``sys.stderr`` and out of reach of its log-level variables. The runner captures fd 2 while a
model loads and passes on only the lines a caller keeps (warnings and errors, say). (The .pte
runner is a child process whose stderr is captured the same way.) Set ``EDGECN_RUNTIME_LOGS=1``
to see everything.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Callable, Iterator


@contextlib.contextmanager
def native_stderr_filtered(keep: Callable[[str], bool] = lambda line: False) -> Iterator[None]:
    """Capture fd 2 (native and Python writes) for the block; afterwards print the lines ``keep`` accepts.

    When the block raises, every captured line is printed: it may say why.
    """
    if os.environ.get("EDGECN_RUNTIME_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            _flush_c_stdio()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = [ln for ln in sink.read().decode(errors="replace").splitlines() if ln.strip()]
            shown = lines if failed else [ln for ln in lines if keep(ln)]
            if shown:
                print("\n".join(shown), file=sys.stderr)


def _flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
