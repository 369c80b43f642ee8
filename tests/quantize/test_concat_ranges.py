"""TFLite int8 of dense nets: every concat gets one range (the converter's constraint) before
conversion, so no input is clipped; regression for the deep-model accuracy loss."""

import pytest
import torch
from torch import nn

from edgecn.backends import BACKENDS, CompileContext, run
from edgecn.metrics import sqnr_db
from edgecn.quantize.concat import share_concat_ranges


class TwoCats(nn.Module):
    """A dense block of two layers: cat(cat(x, f(x)), g(.)) with different ranges per input."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        # BN-ReLU as a depthwise 1x1 conv (what edgecn's int8 preparation makes of a BN)
        self.bn_f, self.f = nn.Conv2d(4, 4, 1, groups=4), nn.Conv2d(4, 4, 3, padding=1)
        self.bn_g, self.g = nn.Conv2d(8, 8, 1, groups=8), nn.Conv2d(8, 4, 3, padding=1)
        with torch.no_grad():
            self.f.weight.mul_(6.0)  # new features with a much wider range than the stem's
            self.g.weight.mul_(12.0)

    def forward(self, x):
        s = self.stem(x)
        a = torch.cat([s, self.f(torch.relu(self.bn_f(s)))], 1)
        return torch.cat([a, self.g(torch.relu(self.bn_g(a)))], 1)


def _converted(model, calib):
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    from edgecn.quantize.pt2e import quantize_pt2e

    q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    return quantize_pt2e(model.eval(), calib[:1], q, calib, fold_quantize=False)


def _cat_params(gm):
    """For each cat: the (scale, zero point) of every dequantized input and of its output quantize."""
    out = []
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target == torch.ops.aten.cat.default:
            ins = [tuple(a.args[1:3]) if "dequantize" in str(a.target) else None for a in n.args[0]]
            outs = [tuple(u.args[1:3]) for u in n.users if "quantize_per_tensor" in str(u.target)]
            out.append((ins, outs))
    return out


def _range(scale, zp):
    return (-128 - zp) * scale, (127 - zp) * scale


def test_every_concat_input_and_output_share_one_covering_range():
    torch.manual_seed(0)
    calib = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    gm = _converted(TwoCats(), calib)
    before = _cat_params(gm)
    # The trap the converter falls into: inputs of one concat quantized differently.
    assert any(len({p for p in ins + outs if p is not None}) > 1 for ins, outs in before)
    changed = share_concat_ranges(gm)
    assert changed > 0
    after = _cat_params(gm)
    shared = {p for ins, outs in after for p in ins + outs if p is not None}
    assert len(shared) == 1, "both chained concats (one dense block) share one range"
    lo, hi = _range(*shared.pop())
    for ins, outs in before:
        for p in ins + outs:
            if p is not None:
                plo, phi = _range(*p)
                assert lo <= plo + 1e-6 and hi >= phi - 1e-6, "the shared range covers every original one"
    assert share_concat_ranges(gm) == 0, "idempotent"
    assert gm(torch.randn(1, 3, 8, 8)).shape == (1, 12, 8, 8)


class CatThenGather(TwoCats):
    """The dense block, then a kept index gather of some of its channels (CondenseNet's index layer)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("index", torch.tensor([0, 5, 9, 11, 2]))
        self.h = nn.Conv2d(5, 4, 1)

    def forward(self, x):
        return self.h(torch.index_select(super().forward(x), 1, self.index))


def test_a_gather_of_a_concat_joins_its_range():
    """TFLite's GATHER_ND has one scale on both sides: a gather with its own range after the
    concat costs a requantize. The concat's output is unobserved, so the link goes through it."""
    calib = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    gm = _converted(CatThenGather(), calib)
    (g,) = [n for n in gm.graph.nodes if n.target == torch.ops.aten.index_select.default]
    (q,) = [u for u in g.users if "quantize_per_tensor" in str(u.target)]
    assert share_concat_ranges(gm) > 0
    shared = {p for ins, outs in _cat_params(gm) for p in ins + outs if p is not None}
    assert shared == {tuple(q.args[1:3])}


def test_dense_condensenet_int8_tflite_keeps_20db(tmp_path, randomize_bn):
    """condensenet-light lowered for rpi5, int8 .tflite: below 20 dB before concat ranges were shared."""
    from edgecn.condense import condense_model, set_progress
    from edgecn.models import create_model
    from edgecn.passes import LoweringConfig, rewrite
    from edgecn.targets import get_target

    torch.manual_seed(0)
    model = randomize_bn(create_model("condensenet-light", num_classes=10, input_size=32))
    set_progress(model, 1.0)
    model = condense_model(model.eval()).eval()
    gen = torch.Generator().manual_seed(1)
    calib, x = torch.randn(32, 3, 32, 32, generator=gen), torch.randn(8, 3, 32, 32, generator=gen)
    lowered, _ = rewrite(model, LoweringConfig.from_dict(get_target("rpi5").lowering, "tflite"), x[:1])
    b = BACKENDS.get("tflite")
    ctx = CompileContext(tmp_path, "cn", b.options_type(), calib, "minmax", use_cache=False)
    art = b.compile(lowered, x[:1], "int8", ctx)
    with torch.no_grad():
        ref = model(x).numpy()
    assert sqnr_db(ref, run(art, x.numpy())) > 20.0


@pytest.mark.parametrize("backend", ["executorch", "tflite"])
def test_classifier_kept_float(backend, tmp_path, tiny_dense):
    """--max-drop's float fallback works on both PT2E backends (litert-torch's quantizer
    refuses set_module_name(name, None); edgecn strips the layer's annotations instead)."""
    calib = torch.randn(24, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    b = BACKENDS.get(backend)
    ctx = CompileContext(tmp_path, "t", b.options_type(), calib, "minmax", use_cache=False, float_layers=("fc",))
    art = b.compile(tiny_dense, calib[:1], "int8", ctx)
    if backend == "tflite":
        assert art.ops.get("DEQUANTIZE") == 1  # the float FULLY_CONNECTED's input
    else:
        assert art.ops["quantized_decomposed.dequantize_per_channel"] == 4  # 5 weighted layers, 1 float
    with torch.no_grad():
        ref = tiny_dense(calib[:8]).numpy()
    assert sqnr_db(ref, run(art, calib[:8].numpy())) > 20.0


def test_tflite_refuses_to_claim_a_float_layer_it_quantized(tmp_path, tiny_dense):
    from edgecn.errors import EdgecnError

    calib = torch.randn(24, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    b = BACKENDS.get("tflite")
    ctx = CompileContext(tmp_path, "t", b.options_type(), calib, "minmax", use_cache=False, float_layers=("conv",))
    with pytest.raises(EdgecnError, match="quantized layer"):
        b.compile(tiny_dense, calib[:1], "int8", ctx)
    assert not list(tmp_path.glob("*.tflite")), "no artifact claiming a float layer is left behind"
