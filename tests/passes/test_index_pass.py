"""The index pass: op counts before/after on condensed CondenseNet and small blocks, exactness."""

import time

import pytest
import torch
from torch import nn

from edgecn.layers import ChannelGather
from edgecn.passes import LoweringConfig, rewrite


class GatherBlock(nn.Module):
    """gather -> BN -> ReLU -> grouped 3x3 conv, with a chosen index."""

    def __init__(self, index, channels=8, groups=2):
        super().__init__()
        self.index = ChannelGather(index, channels)
        self.norm = nn.BatchNorm2d(len(index))
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(len(index), 4, 3, padding=1, groups=groups, bias=True)

    def forward(self, x):
        return self.conv(self.relu(self.norm(self.index(x))))


def _block(index, consistent=True):
    block = GatherBlock(index).eval()
    full = nn.BatchNorm2d(8)
    with torch.no_grad():
        for p in (full.running_mean, full.bias, full.weight):
            p.uniform_(-1, 1)
        full.running_var.uniform_(0.5, 2)
        idx = torch.tensor(index)
        for name in ("running_mean", "running_var", "weight", "bias"):
            getattr(block.norm, name).copy_(getattr(full, name)[idx])
        if not consistent:
            block.norm.running_mean[2] += 0.5  # position 2 repeats channel 1 with other stats
    return block


def _index(cfg_index, **kw):
    return LoweringConfig(index=cfg_index, **kw)


def test_selection_conv_removes_every_index_select(condensed, x32, op_counts, assert_same):
    before = op_counts(condensed, x32)
    model, report = rewrite(condensed, _index("selection_conv"), x32, passes=["index"])
    after = op_counts(model, x32)
    assert before["index_select"] == 13 and after["index_select"] == 0
    # 12 conv gathers become 1x1 convs; the classifier's flat gather folds into its Linear.
    assert after["conv2d"] == before["conv2d"] + 12 and after["linear"] == 1
    assert after["batch_norm"] == before["batch_norm"]
    assert sorted(r["choice"] for r in report) == ["dense"] + ["selection_conv"] * 12
    assert_same(condensed, model, (2, 3, 32, 32))


def test_dense_folds_gather_and_group_conv(condensed, x32, op_counts, conv_groups, assert_same):
    before = op_counts(condensed, x32)
    model, report = rewrite(condensed, _index("dense"), x32, passes=["index"])
    after = op_counts(model, x32)
    assert after["index_select"] == 0 and after["conv2d"] == before["conv2d"]
    # The grouped 1x1 convs became dense; only the 12 grouped 3x3 convs stay grouped.
    assert conv_groups(condensed, x32).count(4) == 24 and conv_groups(model, x32).count(4) == 12
    conv_sites = [r for r in report if r["site"].endswith("conv_1.index")]
    assert len(conv_sites) == 12
    # CondenseNet with C=4: a dense 1x1 costs C times the grouped one.
    assert all(r["macs_after"] == 4 * r["macs_before"] for r in conv_sites)
    assert_same(condensed, model, (2, 3, 32, 32))


def test_gather_keeps_everything(condensed, x32, op_counts):
    model, report = rewrite(condensed, _index("gather"), x32, passes=["index"])
    assert report == [] and op_counts(model, x32) == op_counts(condensed, x32)


def test_slices_for_contiguous_index(op_counts, assert_same):
    block, x = _block([0, 1, 2, 5, 6, 7]), torch.randn(1, 8, 6, 6)
    assert op_counts(block, x)["index_select"] == 1
    model, report = rewrite(block, _index("slices"), x, passes=["index"])
    after = op_counts(model, x)
    assert after["index_select"] == 0 and after["narrow"] == 2 and after["cat"] == 1
    assert report[0]["choice"] == "slices" and report[0]["macs_after"] == 0
    assert_same(block, model, (2, 8, 6, 6))


def test_slices_left_alone_when_too_many_runs(op_counts):
    block, x = _block([0, 2, 4, 6, 1, 3]), torch.randn(1, 8, 6, 6)
    model, report = rewrite(block, _index("slices", max_slices=4), x, passes=["index"])
    assert report == [] and op_counts(model, x)["index_select"] == 1


def test_dense_sums_weights_of_repeated_indices(op_counts, assert_same):
    block, x = _block([0, 1, 1, 3, 4, 4, 4, 7]), torch.randn(1, 8, 6, 6)
    model, report = rewrite(block, _index("dense"), x, passes=["index"])
    after = op_counts(model, x)
    assert after["index_select"] == 0 and after["conv2d"] == 1
    assert report[0]["choice"] == "dense"
    assert_same(block, model, (2, 8, 6, 6))


def test_dense_left_alone_when_repeated_bn_params_differ(op_counts, assert_same):
    block, x = _block([0, 1, 1, 3], consistent=False), torch.randn(1, 8, 6, 6)
    model, report = rewrite(block, _index("dense"), x, passes=["index"])
    assert report == [] and op_counts(model, x)["index_select"] == 1
    # auto still removes it, exactly, without moving the BN.
    model, report = rewrite(block, _index("auto"), x, passes=["index"])
    assert report[0]["choice"] in ("selection_conv", "slices")
    assert op_counts(model, x)["index_select"] == 0
    assert_same(block, model, (2, 8, 6, 6))


def test_auto_rule_removes_every_gather(condensed, x32, op_counts, assert_same):
    model, report = rewrite(condensed, _index("auto"), x32, passes=["index"])
    assert op_counts(model, x32)["index_select"] == 0
    assert all(r["reason"] for r in report)
    assert_same(condensed, model, (2, 3, 32, 32))


def _eager_seconds(model):
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(5):
            model(x)
    return (time.perf_counter() - start) / 5


@pytest.mark.parametrize("index", [[0, 1, 2, 5, 6, 7], [0, 1, 1, 3, 4, 4, 4, 7]])
def test_auto_with_measure_times_candidates(index, assert_same):
    block, x = _block(index), torch.randn(1, 8, 6, 6)
    calls = []

    def measure(model):
        calls.append(model)
        return _eager_seconds(model)

    model, report = rewrite(block, _index("auto"), x, measure=measure, passes=["index"])
    assert len(calls) >= 3  # gather, selection_conv, dense (and slices when legal)
    assert all(r["reason"].startswith("fastest when measured") for r in report)
    assert_same(block, model, (2, 8, 6, 6))


def _site(channels, out, size):
    """gather of all ``channels`` (4 groups of C/4) -> BN -> ReLU -> grouped 1x1 conv (C -> out)."""
    torch.manual_seed(0)
    per = channels // 4
    index = torch.cat([torch.randperm(channels)[:per] for _ in range(4)])
    block = GatherBlock(index.tolist(), channels=channels).eval()
    block.index = ChannelGather(index, channels)
    block.conv = nn.Conv2d(len(index), out, 1, groups=4)
    return block.eval(), torch.randn(1, channels, size, size)


def test_gather_cost_keeps_the_gather_where_folding_costs_more(op_counts, assert_same):
    # A wide conv: the dense fold adds 3/4 * 128 = 96 MACs per gathered value, the copy costs 30.
    block, x = _site(64, 128, 8)
    model, report = rewrite(block, _index("auto", gather_cost=30.0), x, passes=["index"])
    # Kept, with BN/ReLU moved in front so that the gather reads a tensor of its own.
    assert [r["choice"] for r in report] == ["late_gather"] and op_counts(model, x)["index_select"] == 1
    assert report[0]["macs_after"] == report[0]["macs_before"]
    assert_same(block, model, (2, 64, 8, 8))
    # A narrow conv: folding adds 3/4 * 16 = 12 MACs per value, less than the copy.
    block, x = _site(64, 16, 8)
    model, report = rewrite(block, _index("auto", gather_cost=30.0), x, passes=["index"])
    assert [r["choice"] for r in report] == ["dense"] and "gather_cost 30" in report[0]["reason"]
    assert op_counts(model, x)["index_select"] == 0
    assert_same(block, model, (2, 64, 8, 8))


def test_kept_gather_plain_leaves_bn_relu_after_the_gather(op_counts, assert_same):
    """``kept_gather = "gather"`` (the .pte's): the kept gather reads the block's input itself,
    BN/ReLU stay behind it, so no tensor of the input's size is made just for the gather."""
    block, x = _site(64, 128, 8)
    model, report = rewrite(block, _index("auto", gather_cost=30.0, kept_gather="gather"), x, passes=["index"])
    assert [r["choice"] for r in report.decisions()] == ["gather"] and op_counts(model, x)["index_select"] == 1
    assert "gather_cost 30" in report.decisions()[0]["reason"]
    gather = next(n for n in model.graph.nodes if n.op == "call_module" and isinstance(model.get_submodule(n.target), ChannelGather))
    assert gather.args[0].op == "placeholder"  # reads the input, not a BN/ReLU of it
    assert_same(block, model, (2, 64, 8, 8))


@pytest.mark.parametrize("bad", ["dense", "late", None])
def test_kept_gather_must_name_a_kept_form(bad):
    from edgecn.errors import EdgecnError

    with pytest.raises(EdgecnError, match="kept_gather"):
        LoweringConfig(kept_gather=bad)


def test_gather_cost_zero_keeps_every_conv_gather_and_unset_removes_all(condensed, x32, op_counts, assert_same):
    model, report = rewrite(condensed, _index("auto", gather_cost=0.0), x32, passes=["index"])
    # Only the classifier's flat gather folds (into its Linear); the 12 conv gathers stay.
    assert op_counts(model, x32)["index_select"] == 12
    assert sorted(r["choice"] for r in report) == ["dense"] + ["late_gather"] * 12
    assert_same(condensed, model, (2, 3, 32, 32))
    model, _ = rewrite(condensed, _index("auto"), x32, passes=["index"])
    assert op_counts(model, x32)["index_select"] == 0


def test_late_gather_moves_bn_relu_in_front_and_keeps_the_group_conv(condensed, x32, op_counts, conv_groups,
                                                                     assert_same):
    before = op_counts(condensed, x32)
    model, report = rewrite(condensed, _index("late_gather"), x32, passes=["index"])
    after = op_counts(model, x32)
    assert after["index_select"] == 12 and after["conv2d"] == before["conv2d"]
    assert conv_groups(model, x32) == conv_groups(condensed, x32)  # grouped convs untouched
    assert all(r["macs_after"] == r["macs_before"] for r in report if r["choice"] == "late_gather")
    assert_same(condensed, model, (2, 3, 32, 32))


def test_late_gather_left_alone_when_repeated_bn_params_differ(op_counts, assert_same):
    block, x = _block([0, 1, 1, 3], consistent=False), torch.randn(1, 8, 6, 6)
    model, report = rewrite(block, _index("late_gather"), x, passes=["index"])
    assert report == [] and op_counts(model, x)["index_select"] == 1


@pytest.mark.parametrize("bad", [-1.0, True, "30", float("inf")])
def test_gather_cost_must_be_a_non_negative_number(bad):
    from edgecn.errors import EdgecnError

    with pytest.raises(EdgecnError, match="gather_cost"):
        LoweringConfig(gather_cost=bad)


@pytest.mark.parametrize("affine", [True, False])
def test_a_moved_batchnorm_zeroes_the_channels_the_gather_drops(affine):
    """A BN moved in front of a gather covers every channel; the ones the gather does not read
    must come out as zeros, not pass through: int8 gives the BN's output one scale, and an
    unread channel of a trained dense network can be hundreds of times wider than the rest."""
    from edgecn.passes.gather_forms import scatter_bn

    bn = nn.BatchNorm2d(3, affine=affine).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
        if affine:
            bn.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
            bn.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    idx = torch.tensor([4, 1, 4])  # reads channels 1 and 4 of 6 (4 twice, with the same statistics)
    with torch.no_grad():
        bn.running_mean[2], bn.running_var[2] = bn.running_mean[0], bn.running_var[0]
        if affine:
            bn.weight[2], bn.bias[2] = bn.weight[0], bn.bias[0]
    full = scatter_bn(bn, idx, 6)
    x = torch.randn(2, 6, 5, 5) * 1000
    with torch.no_grad():
        out = full(x)
        assert torch.allclose(out[:, idx], bn(x[:, idx]), rtol=1e-5, atol=1e-3)
        unread = torch.tensor([0, 2, 3, 5])
        assert torch.equal(out[:, unread], torch.zeros_like(out[:, unread]))
