"""One int8 range per concatenation, for converters that force a concat onto one scale.

TFLite's int8 CONCATENATION carries one scale and zero point for all its inputs and its
output, and the litert-torch converter enforces that constraint on the PT2E graph it is
given: where the graph gives a concat's inputs different parameters (PT2E observes each
producer on its own), or gives one input none (PT2E leaves a concat feeding a concat
unobserved), the converter takes one input's parameters for the whole concat and writes
them onto the other inputs' producers, without a requantize. Each concat then clips every
input whose range is wider than the one it picked.

In a dense block every layer concatenates the running feature map with its new features,
and the next layer reads the result, so the clipping repeats once per layer and compounds
with depth: a CondenseNet-86 with realistic BatchNorm statistics had 8.5 dB of logit SQNR
in the .tflite against 28.6-33.1 dB in the PT2E graph it was converted from (30.5 dB in the
.tflite once ranges are shared), and a trained one lost 30 to 50 top-1 points.
``share_concat_ranges`` gives every tensor that meets at a concat (its inputs, its output,
transitively: a dense block's concats chain into one group) the union of their calibrated
ranges before conversion, so the converter's constraint already holds and nothing is clipped.
XNNPACK's own quantizer for ExecuTorch shares concat ranges the same way.

A channel gather (``index_select``) joins the group of the tensor it reads: it only picks
values, and TFLite's int8 GATHER_ND carries one scale on both sides, so a gather whose output
has parameters of its own costs a requantize in the .tflite. ``SharedGathers`` already gives a
gather of an observed tensor its input's observer at calibration (CondenseNet-74-c8: 28.3 dB
against 27.6 dB when the two ranges are only unified here); a gather of a concat, whose output
litert-torch leaves unobserved, can only be linked here, through the concat node, and every
gather must follow when its input's group is widened.
"""

from __future__ import annotations

import torch
from torch import fx


def _ops():
    qd = torch.ops.quantized_decomposed
    return qd.quantize_per_tensor.default, qd.dequantize_per_tensor.default


_JOINS = (torch.ops.aten.cat.default, torch.ops.aten.index_select.default)


def share_concat_ranges(gm: fx.GraphModule) -> int:
    """Give every group of tensors joined by ``aten.cat`` or a channel gather one quantization
    range, in place.

    Args:
        gm: a converted PT2E graph with its quantize ops kept (``fold_quantize=False``), so
            that activation scales and zero points are literal arguments.

    Returns:
        How many quantize nodes got new parameters (0: every concat already shared one).
    """
    parent: dict[fx.Node, fx.Node] = {}

    def root(q: fx.Node) -> fx.Node:
        while parent.setdefault(q, q) is not q:
            q = parent[q]
        return q

    quant, _ = _ops()
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in _JOINS:
            continue
        inputs = node.args[0] if node.target == torch.ops.aten.cat.default else [node.args[0]]
        # The node itself is a member too: a concat or gather left unobserved (litert-torch's
        # quantizer does not observe a concat's output) links its readers to its inputs.
        members = [node] + [m for a in inputs if isinstance(a, fx.Node) for m in _quantize_nodes(a) or [a]]
        members += _quantize_nodes(node)
        for m in members[1:]:
            parent[root(m)] = root(members[0])
    groups: dict[fx.Node, list[fx.Node]] = {}
    for q in list(parent):
        if q.op == "call_function" and q.target == quant:
            groups.setdefault(root(q), []).append(q)
    # A group whose members disagree on dtype or bounds is left alone (never seen: one config).
    changed = sum(_unify(qs) for qs in groups.values()
                  if len({_params(q) for q in qs}) > 1 and len({_params(q)[2:] for q in qs}) == 1)
    if changed:
        gm.graph.lint()
        gm.recompile()
    return changed


def _quantize_nodes(value: fx.Node) -> list[fx.Node]:
    """The per-tensor quantize nodes that give ``value`` (or the tensor it dequantizes) its range."""
    quant, dequant = _ops()
    if not isinstance(value, fx.Node):
        return []
    if value.target == dequant and isinstance(value.args[0], fx.Node) and value.args[0].target == quant:
        return [value.args[0]]
    return [u for u in value.users if u.target == quant]


def _params(q: fx.Node) -> tuple:
    return tuple(q.args[1:])


def _unify(qs: list[fx.Node]) -> int:
    """Set every quantize node in ``qs`` (and the dequantize nodes reading it) to the union range."""
    _, dequant = _ops()
    qmin, qmax = int(qs[0].args[3]), int(qs[0].args[4])
    lo = min((qmin - int(q.args[2])) * float(q.args[1]) for q in qs)
    hi = max((qmax - int(q.args[2])) * float(q.args[1]) for q in qs)
    scale = (hi - lo) / (qmax - qmin)
    zero_point = int(min(qmax, max(qmin, round(qmin - lo / scale))))
    for q in qs:
        q.args = (q.args[0], scale, zero_point, *q.args[3:])
        for d in list(q.users):
            if d.target == dequant:
                d.args = (d.args[0], scale, zero_point, *d.args[3:])
    return len(qs)
