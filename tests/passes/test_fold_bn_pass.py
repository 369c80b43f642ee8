"""The BN-folding pass: conv -> BN with a single-use conv output becomes one conv."""

import torch
from torch import nn

from edgecn.passes import LoweringConfig, rewrite


def test_folds_bn_behind_a_folded_shuffle(condensed, x32, op_counts, assert_same):
    cfg = LoweringConfig(index="dense", shuffle="fold")
    lowered, _ = rewrite(condensed, cfg, x32, passes=["index", "shuffle"])
    model, report = rewrite(lowered, cfg, x32, passes=["fold_bn"])
    before, after = op_counts(lowered, x32), op_counts(model, x32)
    assert before["batch_norm"] == 25 and after["batch_norm"] == 13
    assert after["conv2d"] == before["conv2d"]
    assert len(report) == 12 and all(r["choice"] == "fold" for r in report)
    assert_same(condensed, model, (2, 3, 32, 32))


def test_conv_with_other_consumers_is_not_folded(op_counts, randomize_bn):
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return torch.cat([y, self.norm(y)], 1)

    model, x = randomize_bn(Shared().eval()), torch.randn(1, 3, 8, 8)
    out, report = rewrite(model, LoweringConfig(), x, passes=["fold_bn"])
    assert report == [] and op_counts(out, x)["batch_norm"] == 1


def test_disabled_by_config(op_counts, randomize_bn, assert_same):
    model = randomize_bn(nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.ReLU()).eval())
    x = torch.randn(1, 3, 8, 8)
    out, report = rewrite(model, LoweringConfig(fold_bn=False), x, passes=["fold_bn"])
    assert report == [] and op_counts(out, x)["batch_norm"] == 1
    out, report = rewrite(model, LoweringConfig(), x, passes=["fold_bn"])
    assert len(report) == 1 and op_counts(out, x)["batch_norm"] == 0
    assert_same(model, out, (2, 3, 8, 8))
