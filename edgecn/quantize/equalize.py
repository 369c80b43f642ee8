"""Equal channel ranges in a concatenated feature map, exactly, before int8 quantization.

A dense block concatenates the running feature map with each layer's new features, and int8
gives the whole map one scale (TFLite's CONCATENATION and XNNPACK's concat require it;
``concat.py`` makes the calibrated ranges agree). That scale follows the widest channel of the
block, so a channel whose values span a tenth of it is stored with a tenth of the int8 levels.
The deeper the block, the more channels share the widest one's scale: the error grows with
depth.

Each channel of the map is made by a conv and travels through concats, channel gathers and
shuffles, ReLUs and poolings (all commute with a positive per-channel scale) to the convs that
read it (the BatchNorms that start each next layer, written as depthwise 1x1 convs by the int8
preparation, or convs a rewrite folded them into). So channel ``c`` can be multiplied by any
``s_c > 0`` at its producer (the conv's output channel: weight row and bias) and divided by it
again in every reader's weights: the model computes the same function, and
with ``s_c = R / range_c`` every channel of a group spans the group's range ``R``. Channels
whose producer or readers do not fit the pattern keep ``s_c = 1``; the result is checked
against the original on the calibration images and dropped if it differs.

``R`` is the median of the group's channel ranges, not the widest: the int8 levels each channel
gets are the same for any ``R``, but the readers' weights are multiplied by ``range_c / R``. A
BatchNorm reading a channel scales it to a few units, so its weight times ``range_c`` is about
its output's range, and with ``R`` the median the readers' weights stay near 1. With ``R`` the
widest channel (one reaching 2,298 in a trained CondenseNet-74-c8 at 224x224, median 5.6) they
fall to 1e-4 and below, under the weight observers' smallest scale (2^-12, in XNNPACK's and
litert-torch's configs), and weight rounding alone cost the model 30 dB: logit SQNR 3.4 dB with
only the weights in int8, 34.7 dB with the median.

Measured on a trained CondenseNet-86 (rpi5 lowering, 359 held-out digits, ``python
bench/int8_fidelity.py``): +1.1 dB (.tflite) and +1.2 dB (.pte) of logit SQNR with min-max
ranges, +0.1 / +1.0 dB with percentile ranges. The larger loss in a dense block is clipping by
percentile ranges, which the build avoids by choosing the calibration method by SQNR.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import fx, nn

from edgecn.layers.index import ChannelGather
from edgecn.layers.shuffle import ChannelShuffle, shuffle_permutation

MAX_SCALE = 1e3
"""Largest factor a channel is scaled up or down by; a channel that is zero on every calibration
image keeps its scale of 1."""
TOLERANCE = 1e-4
"""Largest output difference, relative to the largest output, the equalized model may show."""

_PASS_THROUGH_FUNCTIONS = (F.relu, torch.relu, F.avg_pool2d, F.max_pool2d, F.adaptive_avg_pool2d)
_PASS_THROUGH_MODULES = (nn.ReLU, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Identity)


def equalize_concat_channels(model: nn.Module, calib: torch.Tensor, batch: int = 16) -> tuple[nn.Module, int]:
    """A copy of ``model`` whose concatenated channels span equal ranges, and how many were scaled.

    Args:
        model: an eval-mode float model whose BatchNorms are depthwise convs
            (``prepare.explicit_batchnorms``).
        calib: calibration images; their per-channel maxima set the scales.

    Returns:
        ``(model, scaled_channels)``; ``model`` itself and 0 when nothing applies or the
        check against the original fails.
    """
    from edgecn.passes.base import propagate, trace

    gm = copy.deepcopy(model) if isinstance(model, fx.GraphModule) else trace(model)
    propagate(gm, calib[:1])
    plans = [p for p in (_follow(gm, n) for n in _leaf_producers(gm)) if p is not None]
    if not plans:
        return model, 0
    peaks = _channel_peaks(gm, [p.conv for p in plans], calib, batch)
    scaled, divisors = 0, {}
    with torch.no_grad():
        for group in _groups(plans):
            live = torch.cat([peaks[p.conv] for p in group])
            live = live[live > 0]
            if not len(live):
                continue
            target = float(live.median())
            for p in group:
                peak = peaks[p.conv]
                scale = (target / peak.clamp(min=1e-30)).clamp(min=1 / MAX_SCALE, max=MAX_SCALE)
                scale = torch.where(peak > 0, scale, torch.ones_like(scale)).double()
                conv = gm.get_submodule(p.conv.target)
                conv.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
                if conv.bias is not None:
                    conv.bias.copy_(conv.bias.double() * scale)
                for reader, src, dst in p.readers:
                    divisors.setdefault(reader, torch.ones(gm.get_submodule(reader.target).in_channels,
                                                           dtype=torch.float64))[dst] *= scale[src]
                scaled += int((scale != 1).sum())
        for reader, divisor in divisors.items():  # each reader's weights rewritten once
            _absorb(gm.get_submodule(reader.target), divisor)
    if not scaled or not _same(model, gm, calib[:batch]):
        return model, 0
    return gm, scaled


class _Plan:
    """A conv whose output channels can be scaled: the convs that read them (each with the
    channel pairs ``(producer channel, reader input channel)``) and the concats they pass through."""

    def __init__(self, conv: fx.Node):
        self.conv, self.readers, self.cats = conv, [], set()


def _leaf_producers(gm: fx.GraphModule) -> list[fx.Node]:
    """Convs whose output reaches a concat through channel-wise ops only."""
    out = []
    for n in gm.graph.nodes:
        if n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.Conv2d):
            node = n
            while len(node.users) == 1 and _moves(gm, next(iter(node.users)), torch.arange(1)) is not None:
                node = next(iter(node.users))
            if any(_is_cat(u) for u in node.users):
                out.append(n)
    return out


def _follow(gm: fx.GraphModule, conv: fx.Node) -> _Plan | None:
    """Where ``conv``'s channels go; None unless every place they reach can absorb a scale.

    The walk carries pairs (conv channel, channel of the current tensor): concats shift them,
    channel gathers and shuffles move, drop or repeat them, ReLUs and poolings keep them.
    """
    plan = _Plan(conv)
    channels = torch.arange(conv.meta["tensor_meta"].shape[1])
    todo = [(conv, channels, channels)]
    while todo:
        node, src, dst = todo.pop()
        if len(src) == 0:
            continue
        for user in node.users:
            if _is_cat(user):
                before = 0
                for value in user.args[0]:
                    if value is node:
                        break
                    before += int(value.meta["tensor_meta"].shape[1])
                plan.cats.add(user)
                todo.append((user, src, dst + before))
            elif _is_conv(gm, user):
                plan.readers.append((user, src, dst))
            else:
                moved = _moves(gm, user, dst)
                if moved is None:
                    return None
                at, to = moved
                todo.append((user, src[at], to))
    return plan if plan.cats else None


def _moves(gm, node: fx.Node, dst: torch.Tensor):
    """Where channels ``dst`` of ``node``'s input are in its output, as (positions in dst, output
    channels), for ops that commute with a positive per-channel scale; None for any other op."""
    if len(node.all_input_nodes) != 1:
        return None
    if node.op == "call_function" and node.target in _PASS_THROUGH_FUNCTIONS:
        return torch.arange(len(dst)), dst
    if node.op != "call_module":
        return None
    m = gm.get_submodule(node.target)
    if isinstance(m, _PASS_THROUGH_MODULES):
        return torch.arange(len(dst)), dst
    if isinstance(m, ChannelGather):
        source = m.index
    elif isinstance(m, ChannelShuffle):
        source = shuffle_permutation(int(node.all_input_nodes[0].meta["tensor_meta"].shape[1]), m.groups)
    else:
        return None
    at, to = (source[None, :] == dst[:, None]).nonzero(as_tuple=True)
    return at, to


def _groups(plans: list[_Plan]) -> list[list[_Plan]]:
    """Plans whose channels meet in a concat share one range: group them."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            i = parent[i]
        return i

    first: dict[fx.Node, int] = {}
    for i, p in enumerate(plans):
        for cat in p.cats:
            parent[root(i)] = root(first.setdefault(cat, i))
    groups: dict[int, list[_Plan]] = {}
    for i, p in enumerate(plans):
        groups.setdefault(root(i), []).append(p)
    return list(groups.values())


def _is_cat(node) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target is torch.cat and (
        node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0) in (1, -3))


def _is_conv(gm, node: fx.Node) -> bool:
    """A conv module reading one tensor: it can divide any input channel's scale out of its weights."""
    return node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.Conv2d) \
        and len(node.all_input_nodes) == 1 and gm.get_submodule(node.target).padding_mode == "zeros"


def _absorb(conv: nn.Conv2d, divisor: torch.Tensor) -> None:
    """Divide each input channel ``c`` of ``conv`` by ``divisor[c]``, in its weights (exact, zero
    padding included): weight ``[o, j]`` reads input channel ``(o // out_per_group) * in_per_group + j``."""
    per_in, per_out = conv.in_channels // conv.groups, conv.out_channels // conv.groups
    channel = (torch.arange(conv.out_channels)[:, None] // per_out) * per_in + torch.arange(per_in)[None, :]
    conv.weight.copy_(conv.weight.double() / divisor[channel][:, :, None, None])


def _channel_peaks(gm, convs, calib, batch) -> dict[fx.Node, torch.Tensor]:
    """max |output| per channel of each conv over the calibration images."""
    peaks: dict[fx.Node, torch.Tensor] = {}
    hooks = []
    for node in convs:
        def hook(_m, _inp, out, node=node):
            m = out.detach().abs().amax(dim=(0, 2, 3))
            peaks[node] = m if node not in peaks else torch.maximum(peaks[node], m)
        hooks.append(gm.get_submodule(node.target).register_forward_hook(hook))
    try:
        with torch.no_grad():
            for i in range(0, len(calib), batch):
                gm(calib[i:i + batch])
    finally:
        for h in hooks:
            h.remove()
    return peaks


def _same(model, gm, x) -> bool:
    with torch.no_grad():
        ref, got = model(x), gm(x)
    return float((ref - got).abs().max()) <= TOLERANCE * max(float(ref.abs().max()), 1e-12)
