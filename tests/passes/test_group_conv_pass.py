"""The grouped-conv pass: native, split and block-diagonal dense forms."""

import pytest
import torch
from torch import nn

from edgecn.passes import LoweringConfig, rewrite


def _grouped():
    return nn.Sequential(nn.Conv2d(8, 12, 3, padding=1, groups=4, bias=True), nn.ReLU()).eval()


def test_dense_makes_every_conv_groups_1(condensed, x32, op_counts, conv_groups, assert_same):
    model, report = rewrite(condensed, LoweringConfig(index="gather", group_conv="dense", shuffle="keep"),
                            x32, passes=["group_conv"])
    assert set(conv_groups(model, x32)) == {1} and conv_groups(condensed, x32).count(4) == 24
    assert op_counts(model, x32)["conv2d"] == op_counts(condensed, x32)["conv2d"]
    assert len(report) == 24 and all(r["macs_after"] == 4 * r["macs_before"] for r in report)
    assert_same(condensed, model, (2, 3, 32, 32))


def test_split_gives_one_conv_per_group(op_counts, conv_groups, assert_same):
    model, x = _grouped(), torch.randn(1, 8, 6, 6)
    out, report = rewrite(model, LoweringConfig(group_conv="split"), x, passes=["group_conv"])
    after = op_counts(out, x)
    assert after["conv2d"] == 4 and after["narrow"] == 4 and after["cat"] == 1
    assert conv_groups(out, x) == [1, 1, 1, 1]
    assert report[0]["macs_after"] == report[0]["macs_before"]
    assert_same(model, out, (2, 8, 6, 6))


def test_native_and_auto_keep_grouped_convs(op_counts):
    model, x = _grouped(), torch.randn(1, 8, 6, 6)
    for choice in ("native", "auto"):
        out, report = rewrite(model, LoweringConfig(group_conv=choice), x, passes=["group_conv"])
        assert report == [] and op_counts(out, x)["conv2d"] == 1


def test_split_leaves_shuffled_convs_to_the_shuffle_pass(condensed, x32, conv_groups):
    cfg = LoweringConfig(index="gather", group_conv="split", shuffle="fold")
    model, report = rewrite(condensed, cfg, x32, passes=["group_conv"])
    # Only the 12 grouped 1x1 convs are split here; the 3x3 convs read shuffles.
    assert len(report) == 12 and all(r["site"].endswith("conv_1.conv") for r in report)
    assert conv_groups(model, x32).count(4) == 12


def test_merge_groups_until_each_has_enough_outputs(op_counts, conv_groups, assert_same):
    model, x = _grouped(), torch.randn(1, 8, 6, 6)  # 4 groups of 3 outputs
    out, report = rewrite(model, LoweringConfig(group_conv="merge", min_group_outputs=6), x, passes=["group_conv"])
    assert conv_groups(out, x) == [2], "two groups merged at a time: 6 outputs each"
    assert op_counts(out, x)["conv2d"] == 1
    (entry,) = report
    assert entry["choice"] == "merge" and entry["macs_after"] == 2 * entry["macs_before"]
    assert_same(model, out, (2, 8, 6, 6))


def test_merge_is_dense_when_the_layer_is_narrow_and_leaves_wide_groups(conv_groups, assert_same):
    model, x = _grouped(), torch.randn(1, 8, 6, 6)
    out, _ = rewrite(model, LoweringConfig(group_conv="merge", min_group_outputs=16), x, passes=["group_conv"])
    assert conv_groups(out, x) == [1], "12 outputs in all: fewer than 16, so one dense conv"
    assert_same(model, out, (2, 8, 6, 6))
    out, report = rewrite(model, LoweringConfig(group_conv="merge", min_group_outputs=3), x, passes=["group_conv"])
    assert report == [] and conv_groups(out, x) == [4]


def test_merge_on_a_condensed_condensenet(condensed, x32, conv_groups, assert_same):
    cfg = LoweringConfig(index="late_gather", group_conv="merge", shuffle="gather")
    model, report = rewrite(condensed, cfg, x32)
    merged = [r for r in report if r["pass"] == "group_conv"]
    assert merged and all(r["choice"] == "merge" for r in merged)
    narrow = [m for m in model.modules() if isinstance(m, nn.Conv2d) and 1 < m.groups < m.in_channels
              and m.out_channels // m.groups < 16]
    assert narrow == [], "every grouped conv (depthwise BNs aside) has at least 16 outputs per group"
    assert_same(condensed, model, (2, 3, 32, 32))


@pytest.mark.parametrize("cin, cout, groups, want", [(16, 8, 8, 2), (16, 16, 4, 4), (24, 24, 12, 6), (12, 24, 12, 12), (6, 6, 3, 1),
                                                         (8, 8, 8, 8), (8, 16, 8, 8)])
def test_merge_to_channel_multiples(cin, cout, groups, want, conv_groups, assert_same):
    """TensorRT's int8 rule: channels per group in multiples of 4, merged with the fewest zeros;
    depthwise convs (one input per group) stay."""
    model, x = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, groups=groups)), torch.randn(1, cin, 5, 5)
    out, report = rewrite(model, LoweringConfig(group_conv="merge", min_group_outputs=1, group_multiple=4), x,
                          passes=["group_conv"])
    assert conv_groups(out, x) == [want]
    conv = next(m for m in out.modules() if isinstance(m, nn.Conv2d))
    assert conv.groups in (1, cin) or (conv.in_channels // conv.groups % 4 == 0 and conv.out_channels // conv.groups % 4 == 0)
    assert len(report) == (0 if want == groups else 1)
    assert_same(model, out, (2, cin, 5, 5))


@pytest.mark.parametrize("k", [2, 4])
def test_merge_k_is_exact_and_offered_per_divisor(k, op_counts, conv_groups, assert_same):
    model, x = nn.Sequential(nn.Conv2d(16, 24, 3, padding=1, groups=8), nn.ReLU()).eval(), torch.randn(1, 16, 6, 6)
    out, report = rewrite(model, LoweringConfig(), x, passes=["group_conv"], choices={"group_conv:0": f"merge_{k}"})
    assert conv_groups(out, x) == [8 // k]
    assert report[0]["choice"] == f"merge_{k}" and report[0]["macs_after"] == k * report[0]["macs_before"]
    assert report[0]["reason"].startswith("cost table")
    assert op_counts(out, x)["conv2d"] == 1
    assert_same(model, out, (2, 16, 6, 6))


def test_merge_k_is_not_offered_for_depthwise():
    from edgecn.passes.base import propagate, trace
    from edgecn.passes.group_conv import LowerGroupConv

    model, x = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8)).eval(), torch.randn(1, 8, 6, 6)
    gm = trace(model)
    propagate(gm, x)
    node = next(n for n in gm.graph.nodes if n.op == "call_module")
    legal = LowerGroupConv().legal(gm, node, LoweringConfig())
    assert not any(c.startswith("merge") for c in legal)
    out, report = rewrite(model, LoweringConfig(), x, passes=["group_conv"], choices={"group_conv:0": "merge_2"})
    assert report == []  # a choice that is not legal at a site is not taken
