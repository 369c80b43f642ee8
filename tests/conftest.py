"""Shared test settings (small thread pools: CI has 2 cores; a fixed seed) and the one trained build."""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_threads():
    try:
        import torch
    except ImportError:  # the torch-free runner tests run without it
        yield
        return
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


def randomize_bn(model):
    """Give every BN non-trivial statistics (as training leaves them), so a wrong BN move or
    fold, or an int8 range that clips, shows in the outputs."""
    from torch import nn

    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


@pytest.fixture(scope="session", name="randomize_bn")
def _randomize_bn_fixture():
    return randomize_bn


@pytest.fixture(scope="session")
def rpi5_build(tmp_path_factory) -> Path:
    """The demo's model (condensenet-light on digits, at 16x16 and 4 epochs to stay quick) trained and
    built for rpi5: int8 and fp32 ``.tflite`` and ``.pte``. Made once per session, in its own
    processes, and shared by every test that needs a trained model's artifacts (ARM lane, app API)."""
    root = tmp_path_factory.mktemp("rpi5-build")
    env = dict(os.environ, OMP_NUM_THREADS="2")
    for args in (["train", "--model", "condensenet-light", "--input-size", "16", "--epochs", "4", "--out", "runs"],
                 ["build", "--target", "rpi5", "--checkpoint", "runs/final.pt", "--out", "build", "--quiet"]):
        proc = subprocess.run([sys.executable, "-m", "edgecn", *args], capture_output=True, text=True, cwd=root,
                              timeout=900, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = (root / "build").iterdir()
    return folder
