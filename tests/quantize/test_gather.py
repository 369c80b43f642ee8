"""A kept channel gather runs on int8 in the .pte path: shared quantization, then q/dq folded."""

import copy

import pytest
import torch
from torch import nn

from edgecn.backends import CompileContext
from edgecn.layers.index import ChannelGather
from edgecn.quantize.gather import SharedGathers, fold_concat_qdq, fold_gather_qdq

QD = torch.ops.quantized_decomposed


class GatherBetweenConvs(nn.Module):
    """A dense block's join: two convs concatenated, a gather with repeats, a conv reading it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 1)
        self.gather = ChannelGather([7, 6, 9, 9, 8, 6], 10)  # repeats, and only the narrower input's channels
        self.c = nn.Conv2d(6, 8, 1, groups=2)
        with torch.no_grad():
            self.a.weight.mul_(4)  # the concat's range is set by the channels the gather drops
        self.edgecn_config = {"name": "gather-between-convs", "num_classes": 8, "input_size": 8}

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), self.b(x)], 1)
        return nn.functional.adaptive_avg_pool2d(self.c(self.gather(y)), 1).flatten(1)


def _int8(make_quantizer):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)

    from edgecn.quantize.pt2e import quantize_pt2e, with_range_observer

    # PT2E without the build's concat equalization, which would give every channel the same
    # range and hide whether the gather's range is shared or only equal.
    torch.manual_seed(0)
    model, calib = GatherBetweenConvs().eval(), torch.randn(6, 3, 8, 8)
    quantizer = make_quantizer(XNNPACKQuantizer())
    quantizer.set_global(with_range_observer(get_symmetric_quantization_config(is_per_channel=True), "minmax", 99.99))
    return quantize_pt2e(model, calib[:1], quantizer, calib)


def _gathers(gm):
    return [n for n in gm.graph.nodes if n.target == torch.ops.aten.index_select.default]


def test_shared_gather_folds_to_an_int8_gather_with_the_same_integers(tmp_path):
    gm = _int8(SharedGathers)
    (g,) = _gathers(gm)
    dq, (q,) = g.args[0], list(g.users)
    assert dq.target == QD.dequantize_per_tensor.default and q.target == QD.quantize_per_tensor.default
    assert tuple(q.args[1:]) == tuple(dq.args[1:])  # the gather shares its input's range
    before = copy.deepcopy(gm)
    assert fold_gather_qdq(gm) == 1
    (g,) = _gathers(gm)
    assert g.args[0].target == QD.quantize_per_tensor.default  # reads the int8 tensor itself
    assert all(u.target == QD.dequantize_per_tensor.default for u in g.users)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    for i in range(len(x)):
        assert torch.equal(before(x[i:i + 1]), gm(x[i:i + 1]))


def test_the_concat_a_gather_reads_runs_on_int8_with_the_same_integers():
    """The concat moves out of XNNPACK with the gather, on int8: its dequantizes and quantize cancel."""
    gm = _int8(SharedGathers)
    assert fold_concat_qdq(gm) == 0  # the gather still reads a dequantize: no int8 gather to join
    fold_gather_qdq(gm)
    before = copy.deepcopy(gm)
    cats = lambda g: [n for n in g.graph.nodes if n.target == torch.ops.aten.cat.default]
    (cat,) = cats(gm)
    assert all(p.target == QD.dequantize_per_tensor.default for p in cat.args[0])
    quants = sum(n.target == QD.quantize_per_tensor.default for n in gm.graph.nodes)
    assert fold_concat_qdq(gm) == 1
    (cat,) = cats(gm)
    assert all(p.target == QD.quantize_per_tensor.default for p in cat.args[0])  # joins int8 tensors
    assert _gathers(gm)[0].args[0] is cat
    assert sum(n.target == QD.quantize_per_tensor.default for n in gm.graph.nodes) == quants - 1
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    for i in range(len(x)):
        assert torch.equal(before(x[i:i + 1]), gm(x[i:i + 1]))


def test_a_gather_with_its_own_range_is_not_folded(tmp_path):
    """Without the shared annotation the gathered tensor gets its own scale: nothing cancels."""
    gm = _int8(lambda inner: inner)
    (g,) = _gathers(gm)
    (q,) = list(g.users)
    assert tuple(q.args[1:]) != tuple(g.args[0].args[1:])
    assert fold_gather_qdq(gm) == 0
    assert _gathers(gm)[0].args[0].target == QD.dequantize_per_tensor.default


@pytest.mark.slow
def test_int8_pte_with_a_kept_gather_runs_close_to_the_float_model(tmp_path, monkeypatch):
    """The .pte: two XNNPACK partitions with the int8 concat and gather between them."""
    from edgecn.backends import BACKENDS, run
    from edgecn.metrics import sqnr_db

    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    et = BACKENDS.get("executorch")
    torch.manual_seed(0)
    model, calib = GatherBetweenConvs().eval(), torch.randn(6, 3, 8, 8)
    ctx = CompileContext(tmp_path, "m", et.options_type(allowed_outside=("aten.index_select",)), calib, "minmax")
    art = et.compile(model, calib[:1], "int8", ctx)
    assert art.extra["non_delegated"] == {"aten.cat": 1, "aten.index_select": 1} and art.extra["partitions"] == 2
    assert art.extra["gather_concats"] == 1
    et.check(art, ctx)  # the concat is allowed where the gather is
    with torch.no_grad():
        want = model(calib).numpy()
    assert sqnr_db(want, run(art, calib.numpy())) > 25


@pytest.mark.slow
def test_int8_tflite_gather_keeps_its_input_scale_without_a_requantize(tmp_path, monkeypatch):
    """TFLite's int8 GATHER_ND has one scale on both sides: a gather calibrated on its own
    (percentile ranges differ between a tensor and a subset of its channels) costs a QUANTIZE."""
    from edgecn.backends import BACKENDS, run
    from edgecn.metrics import sqnr_db

    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    tfl = BACKENDS.get("tflite")
    torch.manual_seed(0)
    model, calib = GatherBetweenConvs().eval(), torch.randn(16, 3, 8, 8)
    art = tfl.compile(model, calib[:1], "int8", CompileContext(tmp_path, "m", None, calib, "percentile", 99.0))
    assert art.ops.get("GATHER_ND", 0) + art.ops.get("GATHER", 0) == 1
    assert art.ops.get("QUANTIZE", 0) == 0, art.ops
    with torch.no_grad():
        want = model(calib).numpy()
    assert sqnr_db(want, run(art, calib.numpy())) > 20
