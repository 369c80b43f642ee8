"""A static check that an ONNX model meets TensorRT's ONNX parser rules for explicit int8.

TensorRT cannot be installed on a build host without the vendor's index, so the rules
from onnx-tensorrt's documentation are checked by walking the graph: opset range, Q/DQ
zero points 0 (symmetric), per-channel weight scales on axis 0, per-tensor activation
scales, no quantized bias, no Gather fed by an int8 tensor, and only supported ops.
"""

from __future__ import annotations

import numpy as np

# Ops the TensorRT ONNX parser (8.5-10.x) imports; enough for the CNNs edgecn builds.
SUPPORTED_OPS = frozenset("""
Add AveragePool BatchNormalization Cast Clip Concat Constant Conv ConvTranspose DequantizeLinear Div Flatten
Gather Gemm GlobalAveragePool GlobalMaxPool Identity LeakyRelu MatMul MaxPool Mul Pad QuantizeLinear
ReduceMean Relu Reshape Resize Shape Sigmoid Slice Softmax Split Squeeze Sub Tanh Transpose Unsqueeze
""".split())
QDQ = ("QuantizeLinear", "DequantizeLinear")


def check_onnx(model, opset_range: tuple[int, int] = (9, 20)) -> list[str]:
    """Problems that would make TensorRT reject ``model`` (an onnx.ModelProto); empty if none."""
    inits = {t.name: t for t in model.graph.initializer}
    problems = _opset(model, opset_range)
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in model.graph.node:
        if n.domain not in ("", "ai.onnx") or n.op_type not in SUPPORTED_OPS:
            problems.append(f"node {n.name!r}: op {n.domain + '::' if n.domain else ''}{n.op_type} is not supported by TensorRT's ONNX parser")
        if n.op_type in QDQ:
            problems += _qdq(n, inits, consumers)
        if n.op_type == "Gather" and n.input and getattr(producers.get(n.input[0]), "op_type", None) == "DequantizeLinear":
            problems.append(f"node {n.name!r}: Gather reads an int8 (Q/DQ) tensor; TensorRT has no int8 Gather "
                            "(quantize the conv input after the Gather instead)")
    return problems


def _opset(model, opset_range) -> list[str]:
    lo, hi = opset_range
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and not lo <= imp.version <= hi:
            return [f"opset {imp.version} is outside the TensorRT parser's range {lo}-{hi}"]
    return []


def _qdq(n, inits, consumers) -> list[str]:
    from onnx import numpy_helper

    out = []
    axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
    scale = numpy_helper.to_array(inits[n.input[1]]) if len(n.input) > 1 and n.input[1] in inits else None
    if len(n.input) > 2 and n.input[2]:
        zp = inits.get(n.input[2])
        if zp is None or np.any(numpy_helper.to_array(zp) != 0):
            out.append(f"node {n.name!r}: zero point is not 0 (TensorRT needs symmetric quantization)")
        elif zp.data_type != 3:  # INT8
            out.append(f"node {n.name!r}: quantized type is not int8")
    per_channel = scale is not None and scale.size > 1
    is_weight = n.op_type == "DequantizeLinear" and n.input[0] in inits
    if per_channel and not is_weight:
        out.append(f"node {n.name!r}: per-channel scales on an activation (TensorRT needs per-tensor activations)")
    if per_channel and is_weight and axis != 0:
        out.append(f"node {n.name!r}: per-channel weight scales on axis {axis} (TensorRT needs axis 0)")
    if is_weight and inits[n.input[0]].data_type == 6:  # INT32: a quantized bias
        out.append(f"node {n.name!r}: quantized (int32) bias; TensorRT needs biases in float")
    if n.op_type == "DequantizeLinear":
        for c in consumers.get(n.output[0], []):
            if c.op_type in ("Conv", "Gemm") and len(c.input) > 2 and c.input[2] == n.output[0]:
                out.append(f"node {n.name!r}: feeds the bias of {c.name!r}; TensorRT needs biases in float")
    return out


def outside_int8(model) -> list[str]:
    """Conv/Gemm nodes of a Q/DQ model that TensorRT would not run in int8, each with why.

    Explicit quantization runs a layer in int8 only where Q/DQ pairs surround its input and
    weight; its int8 grouped-conv kernels also want input and output channels per group in
    multiples of 4 (a layer that misses it takes slower tactics or falls back to fp16/fp32).
    """
    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    out = []
    for n in model.graph.node:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        fed = [getattr(producers.get(i), "op_type", None) == "DequantizeLinear" for i in n.input[:2]]
        if not all(fed):
            out.append(f"{n.name}: {n.op_type} without Q/DQ on its {'input' if not fed[0] else 'weight'} "
                       "(kept in float), runs in fp16/fp32")
            continue
        groups = next((a.i for a in n.attribute if a.name == "group"), 1)
        if n.op_type == "Conv" and groups > 1:
            shape = _weight_shape(producers[n.input[1]], inits)
            if shape is not None:
                cout, cin = shape[0] // groups, shape[1]
                if cin > 1 and (cin % 4 or cout % 4):  # depthwise (1 input per group) has its own kernels
                    out.append(f"{n.name}: grouped conv with {cin} input / {cout} output channels per group "
                               "(not multiples of 4): TensorRT may run it outside int8 or with a slow tactic")
    return out


def _weight_shape(dq, inits):
    w = inits.get(dq.input[0]) if dq.input else None
    return list(w.dims) if w is not None else None
