"""Where an int8 graph departs from float: the costliest activation site is the one a known
defect makes costly, and a healthy graph has none below 20 dB."""

import pytest
import torch

from edgecn.quantize.diagnose import int8_sites, summary


def _int8_graph(model, calib, equalize: bool, monkeypatch):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)

    from edgecn.backends import CompileContext
    from edgecn.quantize import equalize as eq
    from edgecn.quantize.pt2e import quantize_for_backend

    if not equalize:
        monkeypatch.setattr(eq, "equalize_concat_channels", lambda m, c, batch=16: (m, 0))
    ctx = CompileContext(None, "wide", calib=calib, method="minmax", use_cache=False, bias_correction=False)
    return quantize_for_backend("executorch", model, calib[:1], XNNPACKQuantizer,
                                get_symmetric_quantization_config(is_per_channel=True), ctx)


@pytest.fixture(scope="module")
def lowered_wide():
    from edgecn.passes import LoweringConfig, rewrite
    from edgecn.targets import get_target
    from tests.quantize.test_wide_channels import wide_condensenet

    model = wide_condensenet()
    x = torch.randn(1, 3, 16, 16)
    lowered, _ = rewrite(model, LoweringConfig.from_dict(get_target("rpi5").lowering, "executorch"), x)
    return lowered


def test_a_concat_of_unequal_channels_is_named_with_its_cause(lowered_wide, monkeypatch):
    calib = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    graph = _int8_graph(lowered_wide, calib, equalize=False, monkeypatch=monkeypatch)
    weights_only, sites = int8_sites(graph, lowered_wide, calib[:4])
    assert weights_only is not None and weights_only > 20.0, "the weights are not what is lost"
    worst = sites[0]
    assert worst.sqnr_db < 20.0 and worst.channel_spread >= 16, worst
    assert worst.node.startswith("cat") or "stem" in worst.layer, "a concatenation (or the wide channel's producer)"
    lines = summary(weights_only, sites)
    assert "channels differ" in lines[1] and worst.layer in lines[1]
    assert len(sites) == len({s.node for s in sites}) > 10, "every activation site is measured once"


def test_an_equalized_graph_has_no_costly_site(lowered_wide, monkeypatch):
    calib = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    graph = _int8_graph(lowered_wide, calib, equalize=True, monkeypatch=monkeypatch)
    _, sites = int8_sites(graph, lowered_wide, calib[:4])
    assert min(s.sqnr_db for s in sites if s.sqnr_db is not None) > 20.0
