"""LearnedGroupConv: the mask schedule, and condensed == masked (layer and whole model)."""

import pytest
import torch

from edgecn.condense import condense_model, set_progress
from edgecn.errors import EdgecnError
from edgecn.layers import CondensedGroupConv, LearnedGroupConv
from edgecn.layers.learned_group_conv import condensing_stage
from edgecn.models import create_model

GC_PAIRS = [(4, 4), (2, 4), (4, 8), (8, 8)]


def _randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Fresh random weights and BN statistics at the scale of the model's own init.

    Logits stay O(1-10), so 1e-5 is a statement about exactness, not about float32 rounding.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.dtype.is_floating_point or name.endswith("mask"):
                continue
            noise = torch.randn(t.shape, generator=g)
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() > 1:  # conv / linear weights: keep the init's spread
                t.copy_(noise * float(t.std()))
            elif name.endswith("weight"):  # BN scale
                t.copy_(1 + 0.2 * noise)
            else:  # BN shift, running mean, linear bias
                t.copy_(0.2 * noise)


def _stage_progresses(c: int) -> list[float]:
    """One progress value inside each stage 0..C-1."""
    return [(s + 0.5) / (2 * (c - 1)) for s in range(c - 1)] + [0.75]


@pytest.mark.parametrize("groups,condense_factor", GC_PAIRS)
def test_mask_keeps_expected_fraction_each_stage(groups, condense_factor):
    layer = LearnedGroupConv(32, 16, groups, condense_factor)
    _randomize(layer)
    for s, progress in enumerate(_stage_progresses(condense_factor)):
        assert condensing_stage(progress, condense_factor) == s
        layer.set_progress(progress)
        assert int(layer.stage) == s
        alive = layer.group_mask()
        expected = 32 * (condense_factor - s) // condense_factor  # (1 - s/C) of the inputs
        assert alive.sum(1).tolist() == [expected] * groups
        # Output filter o belongs to group o % G: its mask row is that group's input set.
        rows = layer.mask[:, :, 0, 0] > 0
        for o in range(16):
            assert torch.equal(rows[o], alive[o % groups])
    assert alive.sum(1).tolist() == [32 // condense_factor] * groups  # exactly 1/C at the end


def test_progress_never_moves_backwards():
    layer = LearnedGroupConv(16, 8, 4, 4)
    layer.set_progress(0.6)
    before = layer.mask.clone()
    assert layer.set_progress(0.0) == 0
    assert torch.equal(layer.mask, before) and int(layer.stage) == 3


@pytest.mark.parametrize("groups,condense_factor", GC_PAIRS)
def test_condensed_layer_equals_masked_layer(groups, condense_factor):
    layer = LearnedGroupConv(32, 16, groups, condense_factor)
    _randomize(layer, seed=groups * 10 + condense_factor)
    set_progress(layer, 1.0)
    layer.eval()
    condensed = layer.condense()
    assert isinstance(condensed, CondensedGroupConv)
    assert condensed.conv.groups == groups
    assert condensed.index.out_channels == groups * 32 // condense_factor
    x = torch.randn(4, 32, 5, 5)
    assert (layer(x) - condensed.eval()(x)).abs().max() < 1e-5


@pytest.mark.parametrize("groups,condense_factor", GC_PAIRS)
def test_condensed_model_equals_masked_model(groups, condense_factor):
    torch.manual_seed(0)
    model = create_model("condensenet-light", num_classes=10, input_size=16,
                         groups=groups, condense_factor=condense_factor)
    _randomize(model, seed=groups + condense_factor)
    for progress in _stage_progresses(condense_factor) + [1.0]:
        set_progress(model, progress)
    model.eval()
    condensed = condense_model(model)
    assert condensed.edgecn_config["form"] == "condensed"
    assert not any(isinstance(m, LearnedGroupConv) for m in condensed.modules())
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        ref, out = model(x), condensed(x)
    assert ref.abs().max() > 1e-3  # a real signal, not all zeros
    assert (ref - out).abs().max() < 1e-5


def test_condense_before_the_last_stage_is_refused():
    layer = LearnedGroupConv(16, 8, 4, 4)
    layer.set_progress(0.2)
    with pytest.raises(EdgecnError, match="condensing stages"):
        layer.condense()


@pytest.mark.parametrize("in_ch,out_ch,g,c", [(30, 16, 4, 4), (32, 18, 4, 4), (32, 16, 4, 3), (16, 8, 0, 4)])
def test_groups_that_do_not_divide_are_user_errors(in_ch, out_ch, g, c):
    with pytest.raises(EdgecnError):
        LearnedGroupConv(in_ch, out_ch, g, c)
