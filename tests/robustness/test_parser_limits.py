"""Parser limits: every JSON and TOML reader refuses deep nesting, huge integers, huge strings and
non-finite numbers with a named EdgecnError, at one reading layer per format (``edgecn.limits``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecn.errors import EdgecnError

from robust_helpers import COUNTS

DEPTH = 5000


def _json_cases() -> dict[str, str]:
    """Hostile documents, each a valid-looking top level with one bad value inside."""
    return {
        "nested lists": '{"format": "x", "a": ' + "[" * DEPTH + "]" * DEPTH + "}",
        "nested objects": '{"format": "x", "a": ' + '{"b": ' * DEPTH + "1" + "}" * DEPTH + "}",
        "moderate nesting": '{"format": "x", "a": ' + "[" * 40 + "]" * 40 + "}",
        "huge integer": '{"format": "x", "version": 1' + "0" * 5000 + "}",
        "long string": '{"format": "' + "x" * (3 << 20) + '"}',
        "long key": '{"' + "k" * (1 << 17) + '": 1}',
        "NaN": '{"format": "x", "version": NaN}',
        "overflowing float": '{"format": "x", "version": 1e99999}',
    }


def _toml_cases() -> dict[str, str]:
    return {
        "nested arrays": "name = \"t\"\nx = " + "[" * DEPTH + "]" * DEPTH + "\n",
        "moderate nesting": "name = \"t\"\nx = " + "[" * 40 + "]" * 40 + "\n",
        "nested inline tables": "name = \"t\"\nx = " + "{a = " * 200 + "1" + "}" * 200 + "\n",
        "huge integer": "name = \"t\"\nx = 1" + "0" * 5000 + "\n",
        "long string": "name = \"" + "x" * 800_000 + "\"\n",
        "inf": "name = \"t\"\nx = inf\n",
    }


def _manifest(path: Path):
    from edgecn.runner.manifest import Manifest

    return Manifest.load(path)


def _spec(path: Path):
    from edgecn.runner.spec import read_spec

    pte = path.with_name("model.pte")
    pte.write_bytes(b"\0" * 64)
    path.rename(path.with_name("model.pte.json"))
    return read_spec(pte)


def _cost_table(path: Path):
    from edgecn.cost.table import load_table

    return load_table(path)


def _target(path: Path):
    from edgecn.targets import load_target_file

    return load_target_file(path.rename(path.with_suffix(".toml")))


def _recipe(path: Path):
    from edgecn.quantize.calibration import load_recipe

    return load_recipe(str(path.rename(path.with_suffix(".toml"))))


def _compress_config(path: Path):
    from edgecn.compress.config import DeepCompressionConfig

    return DeepCompressionConfig.from_toml(path.rename(path.with_suffix(".toml")))


JSON_READERS = {"manifest": _manifest, "artifact spec": _spec, "cost table": _cost_table}
TOML_READERS = {"target file": _target, "calibration recipe": _recipe, "compression config": _compress_config}


@pytest.mark.parametrize("reader", JSON_READERS)
@pytest.mark.parametrize("case", _json_cases())
def test_json_readers_name_what_breaks_a_limit(reader, case, tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(_json_cases()[case])
    with pytest.raises(EdgecnError) as e:
        JSON_READERS[reader](path)
    message = e.value.message
    assert "Traceback" not in message and len(message) < 600, message
    if case in ("nested lists", "nested objects", "moderate nesting"):
        assert "nested" in message
    elif case in ("huge integer",):
        assert "digits" in message
    elif case in ("long string", "long key"):
        assert "characters" in message or "bytes" in message
    elif case in ("NaN", "overflowing float"):
        assert "NaN" in message or "overflows" in message
    COUNTS["bad_inputs"] += 1


@pytest.mark.parametrize("reader", TOML_READERS)
@pytest.mark.parametrize("case", _toml_cases())
def test_toml_readers_name_what_breaks_a_limit(reader, case, tmp_path):
    path = tmp_path / "doc"
    path.write_text(_toml_cases()[case])
    with pytest.raises(EdgecnError) as e:
        TOML_READERS[reader](path)
    message = e.value.message
    assert "Traceback" not in message and len(message) < 600, message
    if "nest" in case:
        assert "nested" in message
    elif case == "huge integer":
        assert "digits" in message or "cannot be read" in message
    elif case == "long string":
        assert "characters" in message or "bytes" in message
    elif case == "inf":
        assert "not a finite number" in message
    COUNTS["bad_inputs"] += 1


def test_a_compressed_weight_header_past_the_limits_is_a_corrupt_file():
    """The .edc header is JSON too: the same limits, reported as a damaged file."""
    from edgecn.compress import format as fmt

    header = ('{"config": {}, "tensors": ' + "[" * DEPTH + "]" * DEPTH + "}").encode()
    with pytest.raises(fmt._Corrupt, match="nested"):
        fmt._parse_body(b"\0" * fmt._PREFIX.size + header, len(header))


def test_good_files_still_read(tmp_path):
    from edgecn.limits import parse_json

    doc = {"labels": [str(i) for i in range(1000)], "note": "x" * 60_000, "n": 10 ** 29, "f": 1e300,
           "deep": [[[[[[1]]]]]]}
    assert parse_json(json.dumps(doc).encode(), "manifest", "m.json", "") == doc
