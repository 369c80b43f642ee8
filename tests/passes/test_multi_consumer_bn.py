"""The multi-consumer BN pass, and the int8 preparation bug it exists for."""

import pytest
import torch
from torch import nn

from edgecn.passes import LoweringConfig, rewrite


class DenseToy(nn.Module):
    """A stem conv whose output feeds both a pre-activation BN and a concat (dense connectivity)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(8, 4, 3, padding=1, bias=False)
        self.head = nn.Conv2d(12, 5, 1)

    def forward(self, x):
        s = self.stem(x)
        return self.head(torch.cat([s, self.conv(self.relu(self.norm(s)))], 1))


@pytest.fixture
def toy(randomize_bn):
    torch.manual_seed(0)
    return randomize_bn(DenseToy().eval())


def _prepared_error(model, x):
    """Largest output change that prepare_pt2e alone (observers only, no int8 yet) causes."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    graph = torch.export.export(model, (x,)).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        return (prepared(x) - model(x)).abs().max().item()


CFG = LoweringConfig(index="gather", group_conv="native", shuffle="keep", fold_bn=False)


def test_prepare_pt2e_corrupts_shared_conv_output_without_the_pass(toy):
    pytest.importorskip("executorch")
    model, x = toy, torch.randn(1, 3, 8, 8)
    assert _prepared_error(model, x) > 1e-2


def test_pass_keeps_prepare_pt2e_exact(toy, op_counts):
    pytest.importorskip("executorch")
    model, x = toy, torch.randn(1, 3, 8, 8)
    fixed, report = rewrite(model, CFG, x, passes=["multi_consumer_bn"])
    assert [(r["site"], r["choice"]) for r in report] == [("norm", "depthwise_conv")]
    before, after = op_counts(model, x), op_counts(fixed, x)
    assert before["batch_norm"] == 1 and after["batch_norm"] == 0
    assert after["conv2d"] == before["conv2d"] + 1
    assert _prepared_error(fixed, x) < 1e-5


def test_single_consumer_bn_left_alone(op_counts):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    out, report = rewrite(model, CFG, x, passes=["multi_consumer_bn"])
    assert report == [] and op_counts(out, x)["batch_norm"] == 1


def test_condensenet_stem_bn_made_explicit(condensed, x32, op_counts, assert_same):
    # After "dense" index lowering the first layer's BN reads the stem conv, which also feeds a concat.
    cfg = LoweringConfig(index="dense", group_conv="native", shuffle="fold")
    model, report = rewrite(condensed, cfg, x32)
    explicit = [r for r in report if r["pass"] == "multi_consumer_bn"]
    assert [r["site"] for r in explicit] == ["features.denseblock_1.layer_1.conv_1.norm_full"]
    assert_same(condensed, model, (2, 3, 32, 32))
