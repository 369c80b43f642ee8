"""Every number a user gives edgecn, checked in one place: finite, of the right kind, in a stated range.

Torch-free (the device runner uses it). Command-line options take ``type=number(...)`` or
``type=numbers(...)``; argparse then rejects a bad value with exit status 2 and one line
naming the option, the value and the range. Files read elsewhere use ``check_number``. A test
walks every option of every subcommand and generates bad values for each, so an option added
without a range fails it the day it lands.
"""

from __future__ import annotations

import argparse
import math


class Number:
    """An argparse ``type`` for a finite int or float in ``[lo, hi]`` (``lo_open``: ``lo`` excluded)."""

    def __init__(self, kind: type, lo: float | None, hi: float | None, lo_open: bool = False):
        self.kind, self.lo, self.hi, self.lo_open = kind, lo, hi, lo_open
        self.__name__ = kind.__name__  # argparse names the type in its message

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        low = None if self.lo is None else f"{'above' if self.lo_open else 'at least'} {_fmt(self.lo)}"
        high = None if self.hi is None else f"at most {_fmt(self.hi)}"
        if low and high and not self.lo_open:
            return f"{what} from {_fmt(self.lo)} to {_fmt(self.hi)}"
        return " ".join([what, " and ".join(b for b in (low, high) if b)]).strip()

    def __call__(self, text: str):
        value = parse_number(text, self.kind)
        if value is None or not self.contains(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {self.describe()}")
        return value

    def contains(self, value) -> bool:
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        return self.hi is None or value <= self.hi


def number(kind: type, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Number:
    """``type=number(int, 1, 10_000)`` for an option (see ``Number``)."""
    return Number(kind, lo, hi, lo_open)


class Numbers(Number):
    """A comma list of ``Number`` values (``--threads 1,2,4``)."""

    def __call__(self, text: str):
        parts = [t for t in str(text).split(",") if t.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma list (each {self.describe()})")
        try:
            return [super(Numbers, self).__call__(t.strip()) for t in parts]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma list (each {self.describe()})") from None


def numbers(kind: type, lo: float | None = None, hi: float | None = None) -> Numbers:
    return Numbers(kind, lo, hi)


def parse_number(text, kind: type):
    """``text`` as a finite ``kind`` (ASCII only; int: digits only, no '1e3' or '2.0'), or None."""
    text = str(text).strip()
    if not text.isascii():
        return None
    if kind is int:
        body = text[1:] if text[:1] in "+-" else text
        return int(text) if body.isdigit() and len(body) <= 30 else None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def check_number(value, kind: type, lo: float | None, hi: float | None, where: str, *, lo_open: bool = False):
    """``value`` read from a file, checked like an option; EdgecnError names ``where`` and the range."""
    from edgecn.errors import EdgecnError

    spec = Number(kind, lo, hi, lo_open)
    ok = (isinstance(value, int) and not isinstance(value, bool)) if kind is int else \
        (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
    if not ok or not spec.contains(value):
        raise EdgecnError(f"{where} is {value!r}, which is not {spec.describe()}", f"write {spec.describe()} there")
    return kind(value)


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else f"{v:,}".replace(",", "_") if abs(v) >= 100_000 else str(v)


MiB = 1 << 20


def read_file(path, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; EdgecnError otherwise.

    Checked before opening, so a FIFO (which would block), a device such as /dev/zero (which
    never ends), a folder or an oversized file is refused with one line, not read.
    """
    import os
    import stat
    from pathlib import Path

    from edgecn.errors import EdgecnError

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise EdgecnError(f"{what} {str(p)!r} does not exist", "check the path") from None
    except OSError as e:
        raise EdgecnError(f"{what} {str(p)!r} cannot be read ({e.strerror})", "check the path and its permissions") from e
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a pipe, device or socket)"
        raise EdgecnError(f"{what} {str(p)!r} is {kind}", "pass a regular file")
    if st.st_size > max_bytes:
        raise EdgecnError(f"{what} {str(p)!r} is {st.st_size:,} bytes, more than the {max_bytes:,} such a file can be",
                          "pass the right file (this one is not what its name says)")
    try:
        with open(p, "rb") as f:
            return f.read(max_bytes + 1)[:max_bytes]
    except OSError as e:
        raise EdgecnError(f"{what} {str(p)!r} cannot be read ({e.strerror})", "check the path and its permissions") from e



MAX_DEPTH = 32
"""Deepest nesting of objects/tables and lists in any JSON or TOML file edgecn reads (its own are at most 6)."""
MAX_STRING = 1 << 16
"""Longest string (or key) in those files, in characters: names, labels and notes, never megabytes."""
MAX_INT_DIGITS = 30
"""Most digits an integer in those files may have (Python refuses to convert past 4,300)."""


class _Unreadable:
    """A value the parser met but edgecn will not take (an integer of thousands of digits, NaN, Infinity),
    kept as a marker so ``check_tree`` can name the field it is in."""

    def __init__(self, why: str):
        self.why = why


def _int(text: str):
    digits = len(text.lstrip("+-"))
    return int(text) if digits <= MAX_INT_DIGITS else _Unreadable(f"an integer of {digits:,} digits")


def _float(text: str):
    value = float(text)
    return value if math.isfinite(value) else _Unreadable(f"{text[:20]!r}, which overflows a float")


def parse_json(data: bytes, what: str, where: str, fix: str):
    """``data`` as JSON with edgecn's limits; EdgecnError names the field that breaks one.

    Every JSON file edgecn reads comes through here (manifests, artifact specs, cost tables,
    cached ranges, compressed-weight headers), so each kind of bad content gets one clear
    error: not UTF-8, not JSON, nested too deep, an integer of thousands of digits, NaN or
    Infinity, a string of megabytes.
    """
    import json

    from edgecn.errors import EdgecnError

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EdgecnError(f"{what} {where!r} is not UTF-8 text ({e.reason})", fix) from e
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float,
                           parse_constant=lambda c: _Unreadable(f"{c}, which JSON does not allow"))
    except RecursionError as e:
        raise EdgecnError(f"{what} {where!r} is nested too deep to read (more than {MAX_DEPTH} levels)", fix) from e
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise EdgecnError(f"{what} {where!r} is not valid JSON ({str(e)[:120]})", fix) from e
    check_tree(value, what, where, fix)
    return value


def check_tree(value, what: str, where: str, fix: str) -> None:
    """Walk a parsed JSON/TOML value (without recursion) and refuse depth, strings and numbers past the limits."""
    from edgecn.errors import EdgecnError

    stack = [(value, "", 0)]
    while stack:
        v, field, depth = stack.pop()
        name = field or "top level"
        name = name if len(name) <= 80 else name[:77] + "..."
        if depth > MAX_DEPTH:
            raise EdgecnError(f"{what} {where!r}: {name} is nested more than {MAX_DEPTH} levels deep", fix)
        if isinstance(v, _Unreadable):
            raise EdgecnError(f"{what} {where!r}: field {name!r} is {v.why}", fix)
        if isinstance(v, str):
            if len(v) > MAX_STRING:
                raise EdgecnError(f"{what} {where!r}: field {name!r} is a string of {len(v):,} characters "
                                  f"(at most {MAX_STRING:,})", fix)
        elif isinstance(v, int) and not isinstance(v, bool):
            if v and math.log10(abs(v)) >= MAX_INT_DIGITS:  # TOML integers come here unchecked
                raise EdgecnError(f"{what} {where!r}: field {name!r} is an integer of more than {MAX_INT_DIGITS} "
                                  "digits", fix)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise EdgecnError(f"{what} {where!r}: field {name!r} is {v}, not a finite number", fix)
        elif isinstance(v, dict):
            for k, x in v.items():
                key = str(k)
                if len(key) > MAX_STRING:
                    raise EdgecnError(f"{what} {where!r}: a key of {len(key):,} characters in {name!r}", fix)
                stack.append((x, f"{field}.{key}" if field else key, depth + 1))
        elif isinstance(v, list):
            stack.extend((x, f"{field}[{i}]", depth + 1) for i, x in enumerate(v))


def read_json(path, what: str, max_bytes: int, fix: str):
    """A JSON file of at most ``max_bytes``, read and checked by ``parse_json``."""
    return parse_json(read_file(path, what, max_bytes), what, str(path), fix)


def read_toml(path, what: str, fix_syntax: str = "fix the syntax on that line") -> dict:
    """A small TOML file (a target, a calibration recipe, a compression config) as a dict.

    Every TOML edgecn reads goes through here, so each kind of bad file gets the same clear
    error: missing, not a regular file, too large (``read_file``), not UTF-8, not TOML, nested
    too deep, an integer of thousands of digits, a string of megabytes (``check_tree``).
    """
    import tomllib

    from edgecn.errors import EdgecnError

    try:
        value = tomllib.loads(read_file(path, what, MiB).decode("utf-8"))
    except UnicodeDecodeError as e:
        raise EdgecnError(f"{what} {str(path)!r} is not UTF-8 text ({e.reason})", "save it as UTF-8") from e
    except tomllib.TOMLDecodeError as e:
        raise EdgecnError(f"{what} {str(path)!r} is not valid TOML ({e})", fix_syntax) from e
    except RecursionError as e:
        raise EdgecnError(f"{what} {str(path)!r} is nested too deep to read (more than {MAX_DEPTH} levels)",
                          fix_syntax) from e
    except ValueError as e:  # an integer past Python's 4,300-digit conversion limit
        raise EdgecnError(f"{what} {str(path)!r} holds a value that cannot be read ({str(e)[:120]})", fix_syntax) from e
    check_tree(value, what, str(path), fix_syntax)
    return value
