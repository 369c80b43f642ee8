"""The shuffle pass: every form removes the view/transpose/reshape of the shuffle, exactly."""

import dataclasses

import pytest
import torch
from torch import nn

from edgecn.errors import EdgecnError
from edgecn.layers import ChannelShuffle
from edgecn.passes import LoweringConfig, rewrite

SHUFFLE_OPS = ("view", "transpose", "reshape")


def _shuffle_ops(counts):
    return sum(counts[k] for k in SHUFFLE_OPS)


def test_fold_into_dense_producer(condensed, x32, op_counts, assert_same):
    cfg = LoweringConfig(index="dense", shuffle="fold")
    dense, _ = rewrite(condensed, cfg, x32, passes=["index"])
    model, report = rewrite(dense, cfg, x32, passes=["shuffle"])
    before, after = op_counts(dense, x32), op_counts(model, x32)
    assert before["transpose"] == 12 and _shuffle_ops(after) == 0
    assert after["conv2d"] == before["conv2d"]
    assert {r["choice"] for r in report} == {"fold_producer"} and len(report) == 12
    assert all(r["macs_after"] == r["macs_before"] for r in report)
    assert_same(condensed, model, (2, 3, 32, 32))


def test_split_the_grouped_consumer(condensed, x32, op_counts, assert_same):
    cfg = LoweringConfig(index="gather", group_conv="native", shuffle="fold")
    model, report = rewrite(condensed, cfg, x32, passes=["shuffle"])
    before, after = op_counts(condensed, x32), op_counts(model, x32)
    assert _shuffle_ops(after) == 0 and after["index_select"] == 13
    # Each grouped 3x3 conv (4 groups) becomes 4 convs over 4 slices of 2 channels each.
    assert after["conv2d"] == before["conv2d"] + 12 * 3
    assert after["narrow"] == 12 * 4 * 4
    assert all(r["choice"] == "split" and r["macs_after"] == r["macs_before"] for r in report)
    # The BN between shuffle and conv moved in front of the shuffle, permuted: still 25.
    assert after["batch_norm"] == before["batch_norm"]
    assert_same(condensed, model, (2, 3, 32, 32))


class ShuffleOut(nn.Module):
    """A grouped conv whose shuffled output is concatenated, not convolved."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 1, groups=2)
        self.shuffle = ChannelShuffle(2)

    def forward(self, x):
        return torch.cat([x, self.shuffle(self.conv(x))], 1)


def test_permutation_conv_when_nothing_folds(op_counts, assert_same):
    model, x = ShuffleOut().eval(), torch.randn(1, 4, 5, 5)
    out, report = rewrite(model, LoweringConfig(shuffle="fold"), x, passes=["shuffle"])
    after = op_counts(out, x)
    assert _shuffle_ops(after) == 0 and after["conv2d"] == 2
    assert report[0]["choice"] == "selection_conv" and report[0]["macs_after"] == 8 * 8 * 25
    assert_same(model, out, (2, 4, 5, 5))


def test_keep_and_auto_without_free_fold_leave_it(op_counts):
    model, x = ShuffleOut().eval(), torch.randn(1, 4, 5, 5)
    for shuffle in ("keep", "auto"):
        out, report = rewrite(model, LoweringConfig(shuffle=shuffle), x, passes=["shuffle"])
        assert report == [] and op_counts(out, x)["transpose"] == 1


def test_fold_into_dense_consumer(op_counts, assert_same):
    model = nn.Sequential(nn.Conv2d(4, 8, 1, groups=2), ChannelShuffle(2), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 3, 3, padding=1)).eval()
    with torch.no_grad():
        model[2].running_mean.uniform_(-1, 1)
        model[2].weight.uniform_(0.5, 2)
    x = torch.randn(1, 4, 6, 6)
    out, report = rewrite(model, LoweringConfig(shuffle="auto"), x, passes=["shuffle"])
    assert report[0]["choice"] == "fold_consumer" and _shuffle_ops(op_counts(out, x)) == 0
    assert op_counts(out, x)["conv2d"] == 2
    assert_same(model, out, (2, 4, 6, 6))


def test_gather_form_when_no_free_fold(condensed, x32, op_counts, assert_same):
    # Behind kept gathers the producer is the grouped 1x1 conv: nothing folds for free, so
    # "gather" makes each shuffle one 4-D channel gather (what .tflite int8 needs).
    cfg = LoweringConfig(index="late_gather", shuffle="gather")
    model, report = rewrite(condensed, cfg, x32, passes=["index", "shuffle"])
    before, after = op_counts(condensed, x32), op_counts(model, x32)
    assert before["transpose"] == 12 and _shuffle_ops(after) == 0
    # 12 conv index layers kept, 12 shuffles as gathers; the classifier's folds into its Linear.
    assert before["index_select"] == 13 and after["index_select"] == 12 + 12
    # Each behind the BN/ReLU that followed it, so that BN now follows its 1x1 conv.
    assert sorted({r["choice"] for r in report if r["pass"] == "shuffle"}) == ["late_gather"]
    assert after["conv2d"] == before["conv2d"]
    assert_same(condensed, model, (2, 3, 32, 32))


@pytest.mark.parametrize("shuffle,form,ops", [("auto", "late_shuffle", "transpose"), ("gather", "late_gather", "index_select")])
def test_a_kept_shuffle_moves_behind_its_bn_relu_so_the_bn_folds(condensed, x32, op_counts, assert_same,
                                                                  shuffle, form, ops):
    """Behind kept gathers a shuffle stays; its BN moves in front of it and folds into the grouped
    1x1 conv that made the shuffled tensor (one depthwise-conv BN less per layer in int8)."""
    cfg = LoweringConfig(index="late_gather", shuffle=shuffle)
    plain, _ = rewrite(condensed, dataclasses.replace(cfg, shuffle="keep"), x32, passes=["index", "shuffle", "fold_bn"])
    model, report = rewrite(condensed, cfg, x32, passes=["index", "shuffle", "fold_bn"])
    assert [r["choice"] for r in report if r["pass"] == "shuffle"] == [form] * 12
    before, after = op_counts(plain, x32), op_counts(model, x32)
    assert after["batch_norm"] == before["batch_norm"] - 12 and after["conv2d"] == before["conv2d"]
    assert after[ops] == before[ops] + (12 if ops == "index_select" else 0)
    assert_same(condensed, model, (2, 3, 32, 32))
    assert_same(plain, model, (2, 3, 32, 32))


@pytest.mark.parametrize("shuffle, form", [("auto", None), ("gather", "gather")])
def test_shuffle_behind_bn_false_leaves_the_kept_shuffle_in_front_of_its_bn(condensed, x32, op_counts, assert_same,
                                                                             shuffle, form):
    """The lowering before the move (what benchmarks compare against) stays reachable."""
    cfg = LoweringConfig(index="late_gather", shuffle=shuffle, shuffle_behind_bn=False)
    model, report = rewrite(condensed, cfg, x32, passes=["index", "shuffle", "fold_bn"])
    assert [r["choice"] for r in report if r["pass"] == "shuffle"] == ([form] * 12 if form else [])  # kept: no rewrite
    moved, _ = rewrite(condensed, dataclasses.replace(cfg, shuffle_behind_bn=True), x32,
                       passes=["index", "shuffle", "fold_bn"])
    assert op_counts(model, x32)["batch_norm"] == op_counts(moved, x32)["batch_norm"] + 12
    assert_same(condensed, model, (2, 3, 32, 32))


def test_shuffle_behind_bn_must_be_a_bool():
    with pytest.raises(EdgecnError, match="shuffle_behind_bn must be true or false"):
        LoweringConfig.from_dict({"shuffle_behind_bn": "no"})
