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
    model, lowered, calib, x = _lowered_light(randomize_bn)
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
        assert _float_ops(art.path) == {"FULLY_CONNECTED": 1}
    else:
        assert art.ops["quantized_decomposed.dequantize_per_channel"] == 4  # 5 weighted layers, 1 float
    with torch.no_grad():
        ref = tiny_dense(calib[:8]).numpy()
    assert sqnr_db(ref, run(art, calib[:8].numpy())) > 20.0


def _float_ops(path) -> dict[str, int]:
    """Ops of a .tflite that read a float32 activation and float32 weights, read from the file."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    details = it.get_tensor_details()
    found: dict[str, int] = {}
    for op in it._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and all(
                np.dtype(details[i]["dtype"]) == np.float32 for i in op["inputs"][:2]):
            found[op["op_name"]] = found.get(op["op_name"], 0) + 1
    return found


def test_tflite_keeps_a_layer_between_int8_neighbours_float(tmp_path, tiny_dense):
    """The converter folds dequantize -> conv -> quantize into an int8 conv; the layer must
    still come out float, with int8 on both sides."""
    calib = torch.randn(24, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    b = BACKENDS.get("tflite")
    ctx = CompileContext(tmp_path, "t", b.options_type(), calib, "minmax", use_cache=False, float_layers=("conv",))
    art = b.compile(tiny_dense, calib[:1], "int8", ctx)
    assert _float_ops(art.path) == {"CONV_2D": 1}
    assert art.input["dtype"] == "int8" and art.output["dtype"] == "int8"
    assert not list(tmp_path.glob("*.float-source.tflite")), "the fp32 source is not left behind"
    with torch.no_grad():
        ref = tiny_dense(calib[:8]).numpy()
    assert sqnr_db(ref, run(art, calib[:8].numpy())) > 20.0


def test_tflite_dense_layers_kept_float_in_a_lowered_condensenet(tmp_path, randomize_bn):
    """Two 1x1 convs reading a dense concatenation (every leaf has the same name in the file)
    stay float, the others int8."""
    model, lowered, calib, x = _lowered_light(randomize_bn)
    keep = tuple(n for n, _ in lowered.named_modules() if n.endswith("conv_1.conv_dense_shuffled_bn"))[1:3]
    assert len(keep) == 2
    b = BACKENDS.get("tflite")
    plain = b.compile(lowered, x[:1], "int8", CompileContext(tmp_path, "a", b.options_type(), calib, "minmax", use_cache=False))
    kept = b.compile(lowered, x[:1], "int8", CompileContext(tmp_path, "b", b.options_type(), calib, "minmax",
                                                             use_cache=False, float_layers=keep))
    assert _float_ops(plain.path) == {}
    assert sum(_float_ops(kept.path).values()) == 2
    assert kept.ops["CONV_2D"] == plain.ops["CONV_2D"]
    with torch.no_grad():
        ref = model(x).numpy()
    assert sqnr_db(ref, run(kept, x.numpy())) > 20.0


def _lowered_light(randomize_bn):
    """condensenet-light (realistic BN statistics), condensed and lowered for rpi5's .tflite; random
    calibration and test images."""
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
    return model, lowered, calib, x
