"""Numbers that are not numbers, for every numeric option of every subcommand, generated from the
argparse definitions: an option added tomorrow is covered tomorrow, and a bare ``type=int`` or
``type=float`` (no range, NaN accepted) fails here."""

from __future__ import annotations

import argparse

import pytest

from edgecn.limits import Number
from robust_helpers import COUNTS, edgecn


def _parsers():
    from edgecn.cli import build_parser
    from edgecn.runner.cli import build_parser as runner_parser

    top = build_parser()
    subs = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    yield from ((f"edgecn {name}", p) for name, p in subs.choices.items())
    yield "python -m edgecn.runner", runner_parser()


def _numeric_options():
    for where, parser in _parsers():
        for action in parser._actions:
            if action.type in (int, float):
                pytest.fail(f"{where} {action.option_strings}: type={action.type.__name__} has no range; "
                            "use edgecn.limits.number(kind, lo, hi)")
            if isinstance(action.type, Number):
                yield where, action


def _bad_values(t: Number) -> list[str]:
    out = ["nan", "NaN", "inf", "-inf", "Infinity", "", " ", "abc", "1e999", "-1e999", "0x10", "1,5,x", "9" * 40,
           "-" + "9" * 40, "\x00", "１"]  # a full-width digit
    if t.kind is int:
        out += ["2.5", "1e3", "3.0"]
    if t.lo is not None:
        out.append(repr(t.lo) if t.lo_open else repr(t.lo - 1))
    if t.hi is not None:
        out += [repr(t.hi + 1), repr(t.hi * 10 + 1)]
    return out


def test_every_numeric_option_refuses_every_kind_of_bad_number():
    options = list(_numeric_options())
    assert len(options) >= 20, "the walk found too few numeric options"
    tried = 0
    for where, action in options:
        t = action.type
        for value in _bad_values(t):
            with pytest.raises(argparse.ArgumentTypeError, match="is not") as e:
                t(value)
            assert "\n" not in str(e.value)
            tried += 1
        if t.lo is not None:  # the bounds themselves are accepted (a range that refuses all is a bug too)
            if not t.lo_open:
                t(str(t.lo))
        if t.hi is not None:
            t(str(t.hi))
    COUNTS["bad_inputs"] += tried
    print(f"numeric options: {len(options)} options, {tried} generated bad values refused")


@pytest.mark.parametrize("argv", [
    ["train", "--lr", "nan"], ["train", "--group-lasso", "inf"], ["build", "--target", "rpi5", "--max-drop", "nan"],
    ["profile", "x.tflite", "--fps", "1e-300x"], ["profile", "x.tflite", "--duration", "nan"],
    ["profile", "x.tflite", "--threads", "99999999999999999999"], ["condense", "x.pt", "--sparsity", "inf"],
])
def test_a_bad_number_exits_2_with_one_line(argv, tmp_path):
    proc = edgecn(argv, cwd=tmp_path, timeout=60)
    COUNTS["bad_inputs"] += 1
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("usage:")
             and not line.startswith(" ")]
    assert proc.returncode == 2 and len(lines) == 1 and "is not" in lines[0], proc.stderr[-1000:]
    assert "Traceback" not in proc.stderr
