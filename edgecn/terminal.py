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
        self._stream.write(visible(s))
        return len(s)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def safe_output() -> Iterator[None]:
    """Print through ``SafeStream`` (stdout and stderr) until the block ends."""
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, SafeStream):
        sys.stdout = SafeStream(sys.stdout)
    if not isinstance(sys.stderr, SafeStream):
        sys.stderr = SafeStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
