"""The disk and other writers: a file-size limit hit at generated points, and two runs into one --out.

``ulimit -f`` is set the way a shell sets it (RLIMIT_FSIZE, SIGXFSZ left at its default,
which kills the process mid-write unless edgecn ignores it). For each generated limit a
command that writes a checkpoint or a build folder either finishes (the limit was above
everything it writes) or exits 2 with one line naming the file-size limit, leaving the
previous good output byte-identical and no temporary file behind.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.robustness.robust_helpers import COUNTS, ENV, edgecn, leftovers, tree_hashes

TRAIN = ["train", "--input-size", "8", "--batch-size", "128", "--quiet", "--set", "bottleneck=2", "--epochs", "1"]


def ulimit_f(limit: int):
    """What ``ulimit -f`` does before a command: the limit only, SIGXFSZ at its default."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A trained checkpoint, its condensed form and an fp32 .tflite build of it: the previous good outputs."""
    root = tmp_path_factory.mktemp("disk")
    for args in (TRAIN + ["--out", "run"], ["condense", "run/final.pt", "-o", "c.pt"],
                 ["build", "--target", "rpi5", "--checkpoint", "run/final.pt", "--backend", "tflite",
                  "--precision", "fp32", "--out", "b", "--quiet"]):
        r = edgecn(args, root, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
    return root


COMMANDS = {
    "condense": (["condense", "run/final.pt", "-o", "c.pt"], "c.pt"),
    "train": (TRAIN + ["--out", "run", "--overwrite"], "run"),
    "build": (["build", "--target", "rpi5", "--checkpoint", "run/final.pt", "--backend", "tflite",
               "--precision", "fp32", "--out", "b", "--quiet"], "b"),
}


def _state(root, name):
    p = root / name
    return tree_hashes(p) if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()


def test_generated_file_size_limits_keep_the_previous_output(good, tmp_path):
    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(command=st.sampled_from(sorted(COMMANDS)), limit=st.integers(0, 600_000))
    def one(command, limit):
        COUNTS["file_size_limits"] += 1
        root = tmp_path / "w"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(good, root, symlinks=True)
        args, output = COMMANDS[command]
        before = _state(root, output)
        r = edgecn(args, root, timeout=600, preexec=ulimit_f(limit),
                   env={"PYTHONDONTWRITEBYTECODE": "1", "EDGECN_CACHE_DIR": str(root / ".cache")})
        assert r.returncode in (0, 2), f"exit {r.returncode} at limit {limit}: {r.stderr[-1500:]}"
        assert "Traceback" not in r.stderr, r.stderr[-1500:]
        if r.returncode == 2:  # the last line is edgecn's (a library may warn above it: joblib, at import)
            assert "file-size limit" in r.stderr.strip().splitlines()[-1], r.stderr[-1500:]
            assert _state(root, output) == before, f"{output} changed although {command} failed"
        assert not leftovers(root), leftovers(root)

    one()


@pytest.mark.parametrize("delay", [0.0, 0.5, 3.0])
def test_two_training_runs_into_one_out_folder_do_not_interleave(tmp_path, delay):
    """One run writes the folder; the other is refused (while it runs) or finds a finished run."""
    cmd = [sys.executable, "-m", "edgecn", *TRAIN, "--epochs", "2", "--out", "run"]
    first = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    second = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    out, err = first.communicate(timeout=600)
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], (first.returncode, err[-1000:], second.returncode, second.stderr[-1000:])
    loser = second.stderr if second.returncode == 2 else err
    assert "another training run is writing" in loser or "already holds a run" in loser, loser
    import torch

    final = torch.load(tmp_path / "run" / "final.pt", weights_only=True)["extra"]
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["extra"]
    assert json.dumps(final["history"], sort_keys=True) == json.dumps(last["history"], sort_keys=True)
