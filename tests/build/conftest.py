"""A small condensed-ready checkpoint (random weights: accuracy is not the point here)."""

import pytest
import torch


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    from edgecn.checkpoint import save_checkpoint
    from edgecn.condense import set_progress
    from edgecn.models import create_model

    torch.manual_seed(0)
    model = create_model("condensenet-light", num_classes=10, input_size=16)
    set_progress(model, 1.0)
    path = tmp_path_factory.mktemp("ckpt") / "light.pt"
    save_checkpoint(path, model.eval())
    return path


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
