"""Cached calibration ranges are a cache: a damaged entry is set aside with one line, never used.

Hypothesis damages a stored entry at the byte level (overwrite, delete, insert, cut) and at the
JSON level (a range retyped, made huge or reversed, a tensor added or dropped, the checksum or
format changed). ``RangeCache.load`` then returns exactly the ranges stored, or None after one
line with the entry moved to ``KEY.json.bad``; it never raises and never returns other ranges.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edgecn.quantize.calibration import RangeCache

RANGES = {"conv1": (-1.5, 2.25), "block.0.relu": (0.0, 6.0), "fc": (-12.0, 9.5)}
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None)

_at = st.one_of(st.floats(0, 1, allow_nan=False), st.integers(0, 400))
BYTES = st.lists(st.tuples(st.sampled_from(["set", "del", "ins", "cut"]), _at, st.binary(min_size=1, max_size=6)),
                 min_size=1, max_size=4)
VALUE = st.one_of(st.just("1.0"), st.just(None), st.just(True), st.just([]), st.just([1.0]), st.just([1, 2, 3]),
                  st.just([1e39, 2.0]), st.just([3.0, -3.0]), st.just({"lo": 0}), st.just(["0", "1"]),
                  st.tuples(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False)).map(list))
JSONLEVEL = st.one_of(
    st.tuples(st.just("retype"), st.sampled_from(sorted(RANGES)), VALUE),
    st.tuples(st.just("drop"), st.sampled_from(sorted(RANGES)), st.none()),
    st.tuples(st.just("add"), st.just("extra"), VALUE),
    st.tuples(st.just("checksum"), st.just(""), st.sampled_from(["", "0" * 64, None, 7])),
    st.tuples(st.just("format"), st.just(""), st.sampled_from(["edgecn-ranges-0", None, 1])),
    st.tuples(st.just("old format"), st.just(""), st.none()),
)


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, at, arg in ops:
        pos = (int(at * len(b)) if isinstance(at, float) else at) % max(1, len(b))
        if kind == "set":
            b[pos:pos + len(arg)] = arg
        elif kind == "del":
            del b[pos:pos + len(arg)]
        elif kind == "ins":
            b[pos:pos] = arg
        else:
            del b[pos:]
    return bytes(b)


def _json_change(doc: dict, change) -> object:
    kind, name, value = change
    if kind == "retype":
        doc["ranges"][name] = value
    elif kind == "drop":
        del doc["ranges"][name]
    elif kind == "add":
        doc["ranges"][name] = value
    elif kind == "checksum":
        doc["sha256"] = value
    elif kind == "format":
        doc["format"] = value
    else:
        return {k: list(v) for k, v in RANGES.items()}  # how entries looked before they carried a checksum
    return doc


def _check(folder: Path, cache: RangeCache) -> None:
    said: list[str] = []
    got = cache.load(RANGES, say=said.append)
    if got is not None:
        assert got == RANGES and not said
    else:
        assert len(said) == 1 and "set aside" in said[0] and "\n" not in said[0]
        assert not os.path.lexists(cache.path) and os.path.lexists(folder / "k.json.bad")


@SETTINGS
@given(ops=BYTES)
def test_damaged_bytes(ops):
    with tempfile.TemporaryDirectory() as tmp:
        cache = RangeCache("k", Path(tmp))
        cache.store(RANGES)
        cache.path.write_bytes(_mutate(cache.path.read_bytes(), ops))
        _check(Path(tmp), cache)


@SETTINGS
@given(change=JSONLEVEL)
def test_damaged_content(change):
    with tempfile.TemporaryDirectory() as tmp:
        cache = RangeCache("k", Path(tmp))
        cache.store(RANGES)
        doc = _json_change(json.loads(cache.path.read_text()), change)
        cache.path.write_text(json.dumps(doc))
        _check(Path(tmp), cache)


def test_a_folder_or_link_in_place_of_an_entry(tmp_path):
    for make in (lambda p: p.mkdir(), lambda p: p.symlink_to(tmp_path / "nowhere"), lambda p: os.mkfifo(p)):
        cache = RangeCache("k", tmp_path)
        make(cache.path)
        _check(tmp_path, cache)
