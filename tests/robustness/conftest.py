"""Session fixtures for the robustness tests: good files made once, then damaged copies per case.

The good files are real: checkpoints from ``edgecn.models`` and one ``edgecn build`` of a
small CondenseNet for a test target with every backend at fp32 (.onnx, .tflite, .pte and the
manifest that lists their sha256).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from robust_helpers import COUNTS, edgecn

ALL_BACKENDS = """name = "robust"
description = "robustness tests: every backend, fp32 and int8"
arch = "x86_64"
cpu = "host"
backends = ["tensorrt", "tflite", "executorch"]
precisions = ["fp32", "int8"]
"""

ONNX_ONLY = """name = "{name}"
description = "robustness tests: ONNX only (the fastest backend)"
arch = "x86_64"
cpu = "host"
backends = ["tensorrt"]
precisions = [{precisions}]
"""


def pytest_terminal_summary(terminalreporter):
    if COUNTS:
        terminalreporter.write_line(
            f"robustness: {COUNTS['bad_inputs']} bad inputs tried, {COUNTS['mutations']} mutations fuzzed, "
            f"{COUNTS['kills']} processes killed mid-run ({COUNTS['full_disk_mount']} full-disk runs on a 64 KiB tmpfs, "
            f"{COUNTS['full_disk_rlimit']} under RLIMIT_FSIZE)")


def _save(path: Path, name: str, **kw) -> Path:
    import torch

    from edgecn.checkpoint import save_checkpoint
    from edgecn.condense import set_progress
    from edgecn.models import create_model

    torch.manual_seed(0)
    model = create_model(name, **kw)
    set_progress(model, 1.0)
    save_checkpoint(path, model.eval())
    return path


@pytest.fixture(scope="session")
def goods(tmp_path_factory) -> Path:
    """A folder of good inputs: checkpoints, target files and a finished build."""
    root = tmp_path_factory.mktemp("goods")
    _save(root / "light.pt", "condensenet-light", num_classes=10, input_size=16)
    _save(root / "five.pt", "condensenet-light", num_classes=5, input_size=16)
    _save(root / "squeeze.pt", "squeezenet1_1", num_classes=10, input_size=16)
    (root / "robust.toml").write_text(ALL_BACKENDS)
    (root / "onnxonly.toml").write_text(ONNX_ONLY.format(name="onnxonly", precisions='"fp32"'))
    (root / "onnxint8.toml").write_text(ONNX_ONLY.format(name="onnxint8", precisions='"int8"'))
    proc = edgecn(["build", "--target", "robust.toml", "--checkpoint", "light.pt", "--out", "build", "--quiet",
                   "--max-drop", "100"], cwd=root, timeout=600, env={"EDGECN_CACHE_DIR": str(root / ".cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    _compressed(root / "light.edc", root / "squeeze.pt")
    return root


def _compressed(path: Path, checkpoint: Path) -> None:
    from edgecn.checkpoint import load_checkpoint
    from edgecn.compress import save_compressed

    model, _ = load_checkpoint(checkpoint)
    save_compressed(path, model)


@pytest.fixture(scope="session")
def build_dir(goods) -> Path:
    return goods / "build" / "condensenet-light-robust"


@pytest.fixture
def work(tmp_path, goods) -> Path:
    """A fresh working folder holding copies of the good inputs (so the test may hash all of it)."""
    for name in ("light.pt", "five.pt", "squeeze.pt", "robust.toml", "onnxonly.toml", "onnxint8.toml", "light.edc"):
        shutil.copy(goods / name, tmp_path / name)
    shutil.copytree(goods / "build", tmp_path / "build")
    return tmp_path
