"""What edgecn prints reaches a terminal as text, never as control sequences.

Strings edgecn prints often come from somewhere the user did not write: a device's answer over
ssh, a file name in a shared folder, a label in a manifest, a target or calibration file. A
string holding ``ESC [`` (or the one-byte C1 form, or a carriage return) could move the cursor,
rewrite what is on the screen, set the window title or, on some terminals, answer back with
keystrokes. So the two CLIs print through ``safe_output()``: every control character except
newline and tab is shown as its escape (``\\x1b``), as are the Unicode marks that reorder
text on screen. JSON output needs nothing: ``json.dumps`` already escapes them.

Torch-free: the device runner uses it too.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

_SHOWN = {0x09, 0x0A}  # tab and newline are layout, not control
_REORDERING = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)
"""Bidirectional embeddings, overrides and isolates: they make text read differently than it is."""
_TABLE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in _SHOWN}
_TABLE.update({c: f"\\u{c:04x}" for c in _REORDERING})


def visible(text: str) -> str:
    """``text`` with every terminal control character written as its escape."""
    return text.translate(_TABLE)


def is_visible(text: str) -> bool:
    """True when ``text`` holds nothing ``visible`` would change."""
    return visible(text) == text


class SafeStream:
    """A text stream that writes ``visible(s)`` to the stream it wraps; everything else is the wrapped stream's."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, s: str) -> int:
        text = visible(s)
        try:
            self._stream.write(text)
        except UnicodeEncodeError:  # PYTHONIOENCODING=ascii, a C locale: what it cannot encode is shown escaped
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            self._stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        return len(s)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def safe_output() -> Iterator[bool]:
    """Print through ``SafeStream`` (stdout and stderr) until the block ends.

    Yields whether stdout is open: a process started with stdout closed (``>&-``) has none, and
    a command whose output would go nowhere says so instead of failing at its first print. A
    closed stderr is replaced by the null device (the exit status still tells).
    """
    import os

    saved = sys.stdout, sys.stderr
    spare = []
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            stream = open(os.devnull, "w")
            spare.append(stream)
        if not isinstance(stream, SafeStream):
            setattr(sys, name, SafeStream(stream))
    try:
        yield saved[0] is not None
    finally:
        sys.stdout, sys.stderr = saved
        for stream in spare:
            stream.close()


STDOUT_CLOSED = ("standard output is closed", "run it with stdout open (`> /dev/null` discards what it prints)")
"""The error (what, fix) of a command started with stdout closed."""
