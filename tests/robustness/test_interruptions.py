"""Interruptions: training killed at seeded random points resumes to the same weights; a killed build
leaves the previous build folder intact and a rerun completes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robust_helpers import COUNTS, ENV, edgecn, leftovers, tree_hashes

# condensenet-light on 8x8 digits: a real run through every condensing stage in a few seconds.
TINY = ["--input-size", "8", "--batch-size", "128", "--quiet", "--set", "bottleneck=2", "--epochs", "4", "--seed", "5"]
SEED = 20240611


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: its final weights and its seconds per epoch."""
    root = tmp_path_factory.mktemp("ref")
    proc = edgecn(["train", *TINY, "--out", "ref", "--json"], cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    per_epoch = sum(h["seconds"] for h in result["history"]) / len(result["history"])
    return _weights(root / "ref" / "final.pt"), per_epoch


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


CLEAN = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}
"""Signals edgecn handles: exit status and the word its one line says."""


def _complete(folder: Path) -> bool:
    """A finished build: its manifest loads and every artifact it lists has the listed sha256."""
    from edgecn.fileio import sha256_file
    from edgecn.runner.manifest import Manifest

    arts = Manifest.load(folder).artifacts
    return bool(arts) and all(a.path.is_file() and sha256_file(a.path) == a.sha256 for a in arts)


def _default_sigint():
    """Ctrl-C as a terminal delivers it: a test run started in the background (``cmd &``,
    nohup) ignores SIGINT, and children inherit that, so reset it in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgecn", *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 240) -> bool:
    deadline = time.time() + timeout
    while not predicate() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    return proc.poll() is None


def _interrupt(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    COUNTS["kills"] += 1
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_training_killed_at_random_points_resumes_to_the_same_weights(reference, tmp_path, sig):
    ref, per_epoch = reference
    rng = random.Random(SEED + sig)
    killed = 0
    for attempt in range(2):  # two interruptions, each at a seeded random point
        resume = ["--resume"] if (tmp_path / "run" / "last.pt").exists() else []
        proc = _start(["train", *TINY, "--out", "run", *resume], tmp_path)
        mtime = (tmp_path / "run" / "last.pt").stat().st_mtime_ns if resume else 0
        # Wait until this process has written a state, then a random part of an epoch more.
        alive = _wait_for(lambda: (tmp_path / "run" / "last.pt").exists()
                          and (tmp_path / "run" / "last.pt").stat().st_mtime_ns != mtime, proc)
        time.sleep(rng.uniform(0, per_epoch))
        if not alive or proc.poll() is not None:
            proc.communicate()
            break
        code, err = _interrupt(proc, sig)
        if code == 0:  # it finished between the check above and the signal: nothing was interrupted
            assert (tmp_path / "run" / "final.pt").exists(), err[-2000:]
            break
        killed += 1
        if sig in CLEAN:
            assert code == CLEAN[sig][0] and CLEAN[sig][1] in err and "Traceback" not in err, err[-2000:]
        assert not leftovers(tmp_path), leftovers(tmp_path)
        assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["extra"]["kind"] == "train-state"
    assert killed >= 1, "training finished before it could be interrupted"
    if not (tmp_path / "run" / "final.pt").exists():
        proc = edgecn(["train", *TINY, "--out", "run", "--resume"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    got = _weights(tmp_path / "run" / "final.pt")
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(got[k], ref[k]), f"{k} differs from the uninterrupted run"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "SIGINT", "SIGTERM"])
def test_killed_build_keeps_the_previous_build(goods, tmp_path, sig):
    args = ["build", "--target", str(goods / "onnxonly.toml"), "--checkpoint", str(goods / "light.pt"), "--out", "out",
            "--quiet"]
    env = {"EDGECN_CACHE_DIR": str(tmp_path / ".cache")}
    first = edgecn(args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    folder = tmp_path / "out" / "condensenet-light-onnxonly"
    before = tree_hashes(folder)
    assert "manifest.json" in before
    def writing():  # the staging folder exists and holds at least one file: the build is writing
        return any(any(p.iterdir()) for p in (tmp_path / "out").glob(".*.partial") if p.is_dir())

    rng = random.Random(SEED + sig)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "edgecn", *args], cwd=tmp_path, env={**ENV, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_default_sigint)
        alive = _wait_for(writing, proc)
        time.sleep(rng.uniform(0, 0.5))
        assert alive and proc.poll() is None, "the build finished before it could be killed"
        code, err = _interrupt(proc, sig)
        if code != 0:
            break
        # It finished between the check and the signal: a complete new build, then try again.
        assert "manifest.json" in tree_hashes(folder) and not leftovers(tmp_path / "out"), err[-2000:]
        before = tree_hashes(folder)
    assert code != 0, "three builds finished before the signal landed"
    # The guarantee: the previous build, or a complete new one (a kill can land just after the
    # new folder was swapped in, before the process exits), never a mix or a partial folder.
    assert tree_hashes(folder) == before or _complete(folder), "the build folder is neither the old one nor complete"
    if sig in CLEAN:
        assert code == CLEAN[sig][0] and CLEAN[sig][1] in err and "Traceback" not in err, err[-2000:]
        assert not leftovers(tmp_path / "out"), "an interrupted build left its staging folder"
    again = edgecn(args, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    after = tree_hashes(folder)
    assert after["manifest.json"] and set(after) == set(before)
    check = edgecn(["profile", str(folder / "condensenet-light-fp32.onnx"), "--runs", "2", "--warmup", "0", "--json"],
                   cwd=tmp_path)
    assert check.returncode == 0, check.stderr[-2000:]
    assert json.loads(check.stdout)["results"][0]["integrity"]["verified"] is True
