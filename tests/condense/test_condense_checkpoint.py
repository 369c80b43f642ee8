"""`edgecn condense` / condense_checkpoint on a really trained checkpoint."""

import json

import pytest
import torch

from edgecn.checkpoint import load_checkpoint, save_checkpoint
from edgecn.cli import main
from edgecn.errors import EdgecnError
from edgecn.layers import CondensedGroupConv, LearnedGroupConv
from edgecn.models import create_model
from edgecn.condense import Condensing, condense_checkpoint
from edgecn.train import TrainConfig, load_dataset, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    result = train(TrainConfig(input_size=8, epochs=2, batch_size=128, seed=1, out_dir=str(out),
                               overrides={"bottleneck": 2}), progress=False)
    return result


def test_condensed_checkpoint_is_exact_on_heldout_and_random(trained, tmp_path):
    out = tmp_path / "c.pt"
    report = condense_checkpoint(trained.checkpoint, out)
    v = report["verification"]
    assert v["max_abs_diff_random"] < 1e-5 and v["max_abs_diff_heldout"] < 1e-5
    assert v["heldout_images"] == 359 and v["heldout_top1_before"] == v["heldout_top1_after"]
    assert abs(v["heldout_top1_before"] - trained.heldout_top1) < 1e-6  # one image is 1/359
    assert report["after"]["params"] < report["before"]["params"]
    assert report["after"]["macs"] < report["before"]["macs"]
    assert report["after"]["weight_bytes"] < report["before"]["weight_bytes"]
    # The written checkpoint loads weights-only into the condensed structure and matches itself.
    model, extra = load_checkpoint(out)
    assert model.edgecn_config["form"] == "condensed" and extra["kind"] == "condensed"
    assert extra["labels"] == trained.labels and len(extra["normalize"]["mean"]) == 3
    assert any(isinstance(m, CondensedGroupConv) for m in model.modules())
    assert not any(isinstance(m, LearnedGroupConv) for m in model.modules())
    x = load_dataset("digits", 8).heldout.tensors[0][:64]
    with torch.no_grad():
        assert (model(x) - trained.model.eval()(x)).abs().max() < 1e-5


def test_cli_condense_table_and_json(trained, tmp_path, capsys):
    assert main(["condense", str(trained.checkpoint), "-o", str(tmp_path / "a.pt")]) == 0
    text = capsys.readouterr().out
    assert "params" in text and "MACs" in text and "held-out" in text and str(tmp_path / "a.pt") in text
    assert main(["condense", str(trained.checkpoint), "-o", str(tmp_path / "b.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"] == str(tmp_path / "b.pt") and report["verification"]["max_abs_diff"] < 1e-5


def test_condense_errors(trained, tmp_path, capsys):
    squeeze = tmp_path / "squeeze.pt"
    save_checkpoint(squeeze, create_model("squeezenet1_1", 10, 32))
    with pytest.raises(EdgecnError, match="nothing to condense"):
        condense_checkpoint(squeeze, config=Condensing())
    assert not (tmp_path / "squeeze-condensed.pt").exists()
    with pytest.raises(EdgecnError, match="overwrite the input"):
        condense_checkpoint(trained.checkpoint, trained.checkpoint)
    condense_checkpoint(trained.checkpoint, tmp_path / "c.pt")
    with pytest.raises(EdgecnError, match="already condensed"):
        condense_checkpoint(tmp_path / "c.pt", tmp_path / "cc.pt", config=Condensing())
    early = tmp_path / "early.pt"
    save_checkpoint(early, create_model("condensenet-light", 10, 8))  # never trained: stage 0
    with pytest.raises(EdgecnError, match="condensing stages|not been condensed"):
        condense_checkpoint(early, tmp_path / "e.pt")
    assert not (tmp_path / "e.pt").exists()
    assert main(["condense", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
