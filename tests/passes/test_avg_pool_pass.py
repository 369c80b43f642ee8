"""The avg-pool pass: AvgPool2d(k, k) as a depthwise conv with weights 1/(k*k)."""

import pytest
import torch
from torch import nn

from edgecn.passes import LoweringConfig, rewrite


def _pooled(pool):
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), pool, nn.Conv2d(6, 4, 1)).eval()


@pytest.mark.parametrize("k", [2, 4])
def test_pool_becomes_a_depthwise_conv(k, op_counts, assert_same):
    model, x = _pooled(nn.AvgPool2d(k, k)), torch.randn(1, 3, 8, 8)
    before = op_counts(model, x)
    out, report = rewrite(model, LoweringConfig(avg_pool="depthwise_conv"), x, passes=["avg_pool"])
    after = op_counts(out, x)
    assert before["avg_pool2d"] == 1 and "avg_pool2d" not in after
    assert after["conv2d"] == before["conv2d"] + 1
    assert [r["choice"] for r in report] == ["depthwise_conv"]
    assert_same(model, out, (2, 3, 8, 8))


def test_keep_and_unsupported_pools_are_left_alone(op_counts):
    x = torch.randn(1, 3, 8, 8)
    for pool, cfg in [(nn.AvgPool2d(2, 2), LoweringConfig()),
                      (nn.AvgPool2d(3, 2, padding=1), LoweringConfig(avg_pool="depthwise_conv")),
                      (nn.AvgPool2d(2, 2, ceil_mode=True), LoweringConfig(avg_pool="depthwise_conv"))]:
        out, report = rewrite(_pooled(pool), cfg, x, passes=["avg_pool"])
        assert report == [] and op_counts(out, x)["avg_pool2d"] == 1
