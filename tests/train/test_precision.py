"""Mixed precision and channels_last: weights, masks and the group lasso stay float32, condensing stays exact."""

import pytest
import torch

from edgecn.condense import group_lasso
from edgecn.condense import condense_checkpoint
from edgecn.train import TrainConfig, train
from edgecn.train.loop import Precision


@pytest.mark.parametrize("precision,channels_last", [("bf16", True), ("fp16", False)])
def test_autocast_runs_condense_exactly(tmp_path, precision, channels_last):
    result = train(TrainConfig(input_size=8, epochs=2, batch_size=128, seed=1, out_dir=str(tmp_path / "run"),
                               overrides={"bottleneck": 2}, precision=precision, channels_last=channels_last),
                   progress=False)
    saved = torch.load(result.checkpoint, weights_only=True)
    assert saved["extra"]["precision"] == precision and saved["extra"]["channels_last"] is channels_last
    state = saved["state_dict"]
    assert all(v.dtype == torch.float32 for k, v in state.items() if v.is_floating_point()), "weights left fp32"
    assert all(v.is_contiguous() for v in state.values()), "checkpoints are saved in the default memory format"
    assert all(int(v) == 3 for k, v in state.items() if k.endswith(".stage"))
    # The condensed model (index + group conv) equals the masked training model, in float32.
    v = condense_checkpoint(result.checkpoint, tmp_path / "c.pt")["verification"]
    assert v["max_abs_diff_random"] < 1e-5 and v["max_abs_diff_heldout"] < 1e-5
    assert v["heldout_top1_before"] == v["heldout_top1_after"]


def test_group_lasso_stays_float32_under_autocast():
    from edgecn.models import create_model

    model = create_model("condensenet-light", num_classes=10, input_size=8, bottleneck=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(2, 3, 8, 8))
        term = group_lasso(model)
    assert logits.dtype == torch.bfloat16 and term.dtype == torch.float32


def test_auto_precision_is_fp32_on_cpu():
    p = Precision.resolve(TrainConfig(), torch.device("cpu"))
    assert (p.name, p.dtype, p.channels_last) == ("fp32", None, True)
    assert not Precision.resolve(TrainConfig(channels_last=False), torch.device("cpu")).channels_last
    p = Precision.resolve(TrainConfig(precision="bf16", channels_last=True), torch.device("cpu"))
    assert p.dtype == torch.bfloat16 and p.memory_format == torch.channels_last
