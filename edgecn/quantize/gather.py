"""An int8 channel gather: a kept ``index_select`` runs on int8, on its input's scale.

XNNPACK has no gather, so a gather the lowering keeps runs on ExecuTorch's portable kernels
between two XNNPACK partitions. Left to the XNNPACKQuantizer, which does not annotate
``index_select``, the gather runs in float: the partition before it dequantizes its output
and the one after quantizes the gathered tensor with a scale of its own, so every kept gather
costs a dequantize and a quantize on portable kernels and moves four times the bytes.

A gather only picks values, so it can share its input's quantization exactly, as a concat or a
max-pool does: ``SharedGathers`` annotates every ``index_select`` whose input is quantized with
its input's range (the conv reading the gather then takes that range too), and
``fold_gather_qdq`` rewrites the converted ``quantize(index_select(dequantize(x)))`` into
``index_select(x)`` on int8 when both sides carry the same parameters. The result computes the
same integers as the quantized reference graph; only the conv after the gather sees the
gathered channels on their source's scale instead of one fitted to the subset.

A kept gather also splits the XNNPACK program into partitions, and every tensor that crosses
a partition boundary pays two layout changes (XNNPACK runs NHWC, the tensors between
partitions are NCHW). In a dense block the gather reads a concat that the next layer's concat
reads too, so the partition before the gather would hand over the whole concat and the one
after would take it back. ``fold_concat_qdq`` runs such a concat on int8 outside XNNPACK as
well (a concat shares one quantization across its inputs and output, so its dequantizes and
quantize cancel exactly): then only the layer's new channels leave a partition and only the
gathered tensor enters one. CondenseNet-74-c8 at 224x224 (1 thread): 128 -> 94 XNNPACK
transposes, 1.13-1.15x faster in interleaved runs.

The .tflite path uses ``SharedGathers`` too: TFLite's int8 GATHER_ND has one scale on both
sides, so the converter writes a requantize (QUANTIZE) after every gather calibrated on its own
(55 in a CondenseNet-74-c8 at 224x224 calibrated by percentile; none with the shared range).
"""

from __future__ import annotations

import torch
from torch import fx

from edgecn.quantize.pt2e import AnnotationPass

_GATHER = torch.ops.aten.index_select.default
_CAT = torch.ops.aten.cat.default


class SharedGathers(AnnotationPass):
    """A PT2E quantizer whose ``index_select`` outputs share their input's quantization."""

    def after_annotate(self, model) -> None:
        from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

        key = "quantization_annotation"
        for node in model.graph.nodes:
            if node.op != "call_function" or node.target != _GATHER or not isinstance(node.args[0], fx.Node):
                continue
            source = node.args[0]
            note = source.meta.get(key)
            if note is None or note.output_qspec is None or key in node.meta:
                continue
            shared = SharedQuantizationSpec(source)
            node.meta[key] = QuantizationAnnotation(input_qspec_map={source: shared}, output_qspec=shared,
                                                    _annotated=True)


_Q = torch.ops.quantized_decomposed.quantize_per_tensor.default
_DQ = torch.ops.quantized_decomposed.dequantize_per_tensor.default


def _dequantized_as(node, params: tuple) -> bool:
    """``node`` dequantizes an int8 tensor with exactly ``params`` (scale, zero point, range, dtype)."""
    return isinstance(node, fx.Node) and node.target == _DQ and tuple(node.args[1:]) == params


def _on_int8(gm: fx.GraphModule, q: fx.Node, target, args: tuple, meta: dict) -> None:
    """Replace the quantize ``q`` by ``target(*args)`` on the int8 tensors its dequantizes read."""
    with gm.graph.inserting_before(q):
        node = gm.graph.call_function(target, args)
    node.meta = dict(meta)
    q.replace_all_uses_with(node)
    gm.graph.erase_node(q)


def _erase_unused(gm: fx.GraphModule, nodes) -> None:
    for n in dict.fromkeys(nodes):
        if not n.users:
            gm.graph.erase_node(n)


def _done(gm: fx.GraphModule, folded: int) -> int:
    if folded:
        gm.graph.lint()
        gm.recompile()
    return folded


def fold_gather_qdq(gm: fx.GraphModule) -> int:
    """Run each gather on the quantized tensor where its dequantize and quantize cancel, in place.

    Returns:
        How many quantize nodes were replaced by an int8 gather.
    """
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target != _GATHER:
            continue
        dq = node.args[0]
        if not (isinstance(dq, fx.Node) and dq.target == _DQ):
            continue
        params = tuple(dq.args[1:])
        for q in [u for u in node.users if u.target == _Q and tuple(u.args[1:]) == params]:
            _on_int8(gm, q, _GATHER, (dq.args[0],) + tuple(node.args[1:]), node.meta)
            folded += 1
        _erase_unused(gm, [node, dq])
    return _done(gm, folded)


def fold_concat_qdq(gm: fx.GraphModule) -> int:
    """Run each concat that an int8 gather reads on int8, where its dequantizes and quantize cancel, in place.

    Call after ``fold_gather_qdq``. A concat qualifies when all its inputs are dequantized and
    its one output quantized with the same parameters, and a gather reads that output: the
    result then computes the same integers as before.

    Returns:
        How many concats now run on int8.
    """
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target != _CAT or len(node.users) != 1:
            continue
        q = next(iter(node.users))
        if q.target != _Q or not any(u.target == _GATHER for u in q.users):
            continue
        params, parts = tuple(q.args[1:]), list(node.args[0])
        if not all(_dequantized_as(p, params) for p in parts):
            continue
        _on_int8(gm, q, _CAT, ([p.args[0] for p in parts],) + tuple(node.args[1:]), q.meta)
        _erase_unused(gm, [node, *parts])
        folded += 1
    return _done(gm, folded)
