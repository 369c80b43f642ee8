"""int8 of a dense network whose concatenated channels span very different ranges, as training
leaves them: one stem channel 500x wider than the rest, which every BatchNorm reading it
scales back down. A trained CondenseNet-74-c8 at 224x224 has such a channel (|x| up to 2,298
where the median channel stays below 6), and int8 lost 25-36 top-1 points in both formats.

The model here computes exactly what the model without the wide channel computes, so any loss
is int8's. Each backend's artifact, run in its own runtime, must stay above 20 dB SQNR.
"""

import pytest
import torch

from edgecn.backends import BACKENDS, CompileContext, run
from edgecn.layers.learned_group_conv import CondensedGroupConv
from edgecn.metrics import sqnr_db

WIDE = 500.0
"""How much wider than its siblings the stem's channel 0 is made."""


def widen_stem_channel(model, channel: int = 0, factor: float = WIDE):
    """Scale the stem's output ``channel`` by ``factor`` and every BatchNorm reading it back by
    ``1 / factor`` (mean by ``factor``, variance by its square): the same function, one channel
    of the dense feature map ``factor`` times wider. Concats keep a channel's position and the
    transitions are average pools, so every layer's index and ``norm_last`` read it there."""
    with torch.no_grad():
        model.features.stem.weight[channel] *= factor
        norms = [(m.index.index, m.norm) for m in model.modules() if isinstance(m, CondensedGroupConv)]
        norms.append((torch.arange(model.features.norm_last.num_features), model.features.norm_last))
        for index, bn in norms:
            at = index == channel
            bn.running_mean[at] *= factor
            bn.running_var[at] *= factor ** 2
    return model


def wide_condensenet():
    """A condensed condensenet-light (16x16, BNs with trained-like statistics) with its stem's
    channel 0 ``WIDE`` times wider than the rest, checked to compute the same function."""
    from edgecn.condense import condense_model, set_progress
    from edgecn.models import create_model
    from tests.conftest import randomize_bn

    torch.manual_seed(0)
    model = randomize_bn(create_model("condensenet-light", num_classes=10, input_size=16))
    set_progress(model, 1.0)
    model = condense_model(model.eval()).eval()
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x)
        wide = widen_stem_channel(model)
        got = wide(x)
    assert float((ref - got).abs().max()) <= 1e-3 * float(ref.abs().max()), "the widened model is the same function"
    return wide


@pytest.fixture(scope="module")
def wide_model():
    return wide_condensenet()


@pytest.mark.slow
@pytest.mark.parametrize("backend", [n for n, b in BACKENDS.items() if "int8" in b.precisions])
def test_a_wide_channel_keeps_int8_fidelity_in_the_runtime(backend, wide_model, tmp_path, monkeypatch):
    from edgecn.passes import LoweringConfig, rewrite
    from edgecn.targets import get_target

    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    target = get_target("rpi5") if backend in get_target("rpi5").backends else get_target("jetson")
    calib = torch.randn(32, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    lowered, _ = rewrite(wide_model, LoweringConfig.from_dict(target.lowering, backend), calib[:1])
    b = BACKENDS.get(backend)
    ctx = CompileContext(tmp_path, "wide", target.options(backend), calib, "minmax")
    art = b.compile(lowered, calib[:1], "int8", ctx)
    x = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = wide_model(x).numpy()
    got = run(art, x.numpy())
    assert sqnr_db(ref, got) > 20.0
