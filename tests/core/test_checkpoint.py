import pickle

import pytest
import torch

from edgecn.checkpoint import load_checkpoint, save_checkpoint
from edgecn.condense import condense_model, set_progress
from edgecn.errors import EdgecnError
from edgecn.models import create_model


@pytest.fixture
def light():
    torch.manual_seed(0)
    return create_model("condensenet-light", num_classes=10, input_size=16)


def test_roundtrip_training_and_condensed_form(tmp_path, light):
    x = torch.randn(2, 3, 16, 16)
    save_checkpoint(tmp_path / "t.pt", light, extra={"epoch": 3})
    m, extra = load_checkpoint(tmp_path / "t.pt")
    assert extra == {"epoch": 3}
    assert torch.equal(m(x), light.eval()(x))
    set_progress(light, 1.0)
    c = condense_model(light.eval())
    save_checkpoint(tmp_path / "c.pt", c)
    c2, _ = load_checkpoint(tmp_path / "c.pt")
    assert c2.edgecn_config["form"] == "condensed"
    assert torch.equal(c2(x), c(x))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "folder", "missing"])
def test_damaged_checkpoints_are_user_errors(tmp_path, light, damage):
    p = tmp_path / "ck.pt"
    save_checkpoint(p, light)
    data = p.read_bytes()
    if damage == "empty":
        p.write_bytes(b"")
    elif damage == "truncated":
        p.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        p.write_bytes(bytes(range(256)) * 10)
    elif damage == "folder":
        p.unlink()
        p.mkdir()
    else:
        p.unlink()
    with pytest.raises(EdgecnError):
        load_checkpoint(p)


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"format": "edgecn-checkpoint", "version": 1, "payload": _Payload(str(marker))}, p)
    assert not marker.exists()
    with pytest.raises(EdgecnError, match="refusing"):
        load_checkpoint(p)
    assert not marker.exists()
    # and a raw pickle file is not a checkpoint either
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(EdgecnError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_checkpoint_for_another_model_is_refused(tmp_path, light):
    p = tmp_path / "ck.pt"
    save_checkpoint(p, light)
    payload = torch.load(p, weights_only=True)
    payload["config"]["name"] = "condensenet-86"
    torch.save(payload, p)
    with pytest.raises(EdgecnError, match="does not fit the model its config describes"):
        load_checkpoint(p)
