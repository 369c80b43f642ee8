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
