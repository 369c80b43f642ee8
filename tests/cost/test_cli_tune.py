"""``edgecn tune`` as a user meets it: help, and clear errors before any work starts."""

import subprocess
import sys

import pytest

from edgecn.cost.api import default_table_path, resolve_table
from edgecn.targets import get_target


def _edgecn(*args):
    return subprocess.run([sys.executable, "-m", "edgecn", *args], capture_output=True, text=True, timeout=300)


def test_help_says_what_it_does():
    r = _edgecn("tune", "--help")
    assert r.returncode == 0 and "--remote" in r.stdout and "cost_table" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--target", "jetson", "--model", "condensenet-light"], "builds no .tflite or .pte"),
    (["--target", "rpi5", "--backend", "tensorrt", "--model", "condensenet-light"], "no CPU backend"),
    (["--target", "rpi5", "--model", "condensenet-light", "--table", "t.json"], "several backends"),
    (["--target", "rpi5", "--checkpoint", "missing.pt"], "does not exist"),
    (["--target", "rpi5", "--model", "no-such-model", "--backend", "tflite"], "unknown model"),
    (["--target", "rpi5", "--model", "condensenet-light", "--rounds", "0"], "--rounds"),
])
def test_bad_input_is_one_clear_line(args, words, tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgecn", "tune", *args], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr


def test_table_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path))
    rpi5 = get_target("rpi5")
    assert default_table_path(rpi5, "tflite", 1, None) == tmp_path / "costs" / "raspberry-pi-5-tflite-1t.json"
    assert default_table_path(rpi5, "tflite", 4, "pi@raspberrypi.local").name == \
        "raspberry-pi-5-tflite-4t-pi_raspberrypi.local.json"
    assert resolve_table("costs/x.json", rpi5) == rpi5.path.parent / "costs" / "x.json"


@pytest.mark.parametrize("damage", ["not json", "truncated", "a list", "another format", "wrong types", "huge time",
                                    "another backend", "a folder"])
def test_a_bad_cached_cost_table_is_set_aside_and_measured_afresh(tmp_path, damage):
    """The cost table tune keeps in the cache is a cache: a bad one is set aside with one line."""
    import json

    from edgecn.cost.api import _cached_table
    from edgecn.cost.table import CostTable

    path = tmp_path / "t.json"
    good = CostTable("tflite", 1, machine={"cpu": "x"}, segments={"a": {"ms": 1.0}})
    good.save(path)
    doc = json.loads(path.read_text())
    if damage == "a folder":
        path.unlink()
        path.mkdir()
    else:
        text = {"not json": "{", "truncated": path.read_text()[:40], "a list": "[]",
                "another format": json.dumps(dict(doc, format="x")),
                "wrong types": json.dumps(dict(doc, segments={"a": {"ms": "fast"}}, machine=[1])),
                "huge time": path.read_text().replace('"ms": 1.0', '"ms": 1e999'),
                "another backend": json.dumps(dict(doc, backend="executorch"))}[damage]
        path.write_text(text)
    said: list[str] = []
    table = _cached_table(path, "tflite", 1, said.append)
    assert not table.segments and len(said) == 1 and "set aside" in said[0], said
    assert (tmp_path / "t.json.bad").exists() and not path.exists()
    assert _cached_table(path, "tflite", 1, said.append).segments == {}  # and the next run starts clean
