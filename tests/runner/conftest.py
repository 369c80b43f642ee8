"""Session fixtures for the runner tests: real artifacts made once, in their own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """A folder with model.tflite, model.onnx, model.pte, manifest.json, int8/model.pte and steady/model.tflite."""
    out = tmp_path_factory.mktemp("artifacts")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("make_artifacts.py")), str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def native_env(tmp_path_factory) -> dict:
    """Environment under which .pte files run in edgecn's native C++ runner, built once for the session."""
    import shutil

    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler on this machine: the native .pte runner is compiled where it runs")
    env = dict(os.environ, EDGECN_CACHE_DIR=str(tmp_path_factory.mktemp("edgecn-cache")), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "edgecn.runner.native"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.startswith("built: "), proc.stderr[-3000:]
    return env
