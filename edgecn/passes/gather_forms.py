"""Exact replacements for a channel gather ``x[:, idx]``, shared by the index and shuffle passes.

A channel shuffle is a gather whose index is a permutation, so both passes lower the
same thing: to a 0/1 selection conv, to slices + concat, or by moving the gather through
per-channel ops (BN, ReLU) and folding it into the columns of the conv that reads it.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from edgecn.passes.base import add_module, cat, is_module, is_relu, module, narrow


def runs(idx) -> list[tuple[int, int]]:
    """``idx`` as maximal runs of consecutive channels: [(start, length), ...] in index order."""
    out: list[list[int]] = []
    for i in (int(v) for v in idx):
        if out and out[-1][0] + out[-1][1] == i:
            out[-1][1] += 1
        else:
            out.append([i, 1])
    return [(a, n) for a, n in out]


def channel_chain(gm: fx.GraphModule, node: fx.Node):
    """Per-channel ops (BN, ReLU) from ``node`` to the conv that reads them, each used once.

    Returns:
        ``(chain, conv_node)``, or ``None`` when the gather does not feed a conv that way.
    """
    chain, cur = [], node
    while len(cur.users) == 1:
        user = next(iter(cur.users))
        if (is_module(gm, user, nn.BatchNorm2d) or is_relu(gm, user)) and user.args[0] is cur:
            chain.append(user)
            cur = user
        elif is_module(gm, user, nn.Conv2d) and user.args[0] is cur:
            return chain, user
        else:
            return None
    return None


def scatter_bn(bn: nn.BatchNorm2d, idx: torch.Tensor, channels: int) -> nn.BatchNorm2d | None:
    """A BN over all ``channels`` with ``bn(x[:, idx]) == new(x)[:, idx]``, or None.

    Channels that ``idx`` does not read come out as zeros (weight and bias 0): nothing
    downstream reads them, and an identity there would carry the raw feature map's values
    past the BN. In a trained dense network those are the widest in the model (a
    CondenseNet-74-c8 trained at 224: one channel reaching 2,298 where the BN outputs of the
    read channels stay below 8), and int8 gives the BN-ReLU output one scale, so they alone
    would set it and leave the read channels a few int8 levels.

    None when two positions of ``idx`` read the same channel with different BN parameters
    (then no per-channel BN before the gather computes the same thing).
    """
    if bn.running_mean is None:
        return None
    new = nn.BatchNorm2d(channels, eps=bn.eps, affine=True).eval()
    params = [("running_mean", bn.running_mean), ("running_var", bn.running_var)]
    if bn.affine:
        params += [("weight", bn.weight), ("bias", bn.bias)]
    else:
        params += [("weight", torch.ones_like(bn.running_mean)), ("bias", torch.zeros_like(bn.running_mean))]
    with torch.no_grad():
        new.weight.zero_()
        new.bias.zero_()
        for attr, value in params:
            dst = getattr(new, attr)
            dst[idx] = value.detach()
            if not torch.equal(dst[idx], value.detach()):
                return None
    return new


def dense_conv(conv: nn.Conv2d, idx: torch.Tensor, channels: int) -> nn.Conv2d:
    """A groups=1 conv over all ``channels`` equal to ``conv`` applied to ``x[:, idx]``.

    Weights of positions that read the same channel are summed (exact up to rounding).
    """
    new = _like(conv, channels, conv.out_channels)
    k, rows = conv.in_channels // conv.groups, conv.out_channels // conv.groups
    with torch.no_grad():
        new.weight.zero_()
        for g in range(conv.groups):
            r = slice(g * rows, (g + 1) * rows)
            new.weight[r].index_add_(1, idx[g * k:(g + 1) * k], conv.weight[r])
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def split_convs(conv: nn.Conv2d, idx: torch.Tensor) -> list[tuple[list[tuple[int, int]], nn.Conv2d]]:
    """Per group of ``conv``: the input runs it reads and a groups=1 conv over them."""
    k, rows = conv.in_channels // conv.groups, conv.out_channels // conv.groups
    parts = []
    for g in range(conv.groups):
        cols = idx[g * k:(g + 1) * k]
        used = torch.unique(cols)  # sorted: the group reads contiguous runs of x
        pos = torch.searchsorted(used, cols)
        new = _like(conv, len(used), rows)
        with torch.no_grad():
            new.weight.zero_()
            new.weight.index_add_(1, pos, conv.weight[g * rows:(g + 1) * rows])
            if conv.bias is not None:
                new.bias.copy_(conv.bias[g * rows:(g + 1) * rows])
        parts.append((runs(used), new))
    return parts


def selection(idx: torch.Tensor, channels: int, ndim: int) -> nn.Module:
    """A 1x1 conv (4-D input) or bias-free linear (2-D input) with a 0/1 matrix picking ``idx``."""
    mat = torch.zeros(len(idx), channels)
    mat[torch.arange(len(idx)), idx] = 1.0
    if ndim == 2:
        mod = nn.Linear(channels, len(idx), bias=False)
    else:
        mod = nn.Conv2d(channels, len(idx), 1, bias=False)
        mat = mat[:, :, None, None]
    with torch.no_grad():
        mod.weight.copy_(mat)
    return mod


def emit_slices(gm: fx.GraphModule, x: fx.Node, parts: list[tuple[int, int]]) -> fx.Node:
    """Insert slices of ``x`` along channels and their concat (before the current insert point)."""
    return cat(gm, [narrow(gm, x, a, n) for a, n in parts])


def emit_chain(gm: fx.GraphModule, x: fx.Node, chain: list[fx.Node], idx: torch.Tensor,
               channels: int) -> fx.Node | None:
    """Re-emit the per-channel ``chain`` over all channels of ``x``; None if a BN cannot move."""
    cur = x
    for node in chain:
        bn = module(gm, node)
        if isinstance(bn, nn.BatchNorm2d):
            new = scatter_bn(bn, idx, channels)
            if new is None:
                return None
            cur = gm.graph.call_module(add_module(gm, node.target, "full", new), (cur,))
        else:
            cur = gm.graph.create_node(node.op, node.target, (cur,) + tuple(node.args[1:]), dict(node.kwargs))
    return cur


def chain_movable(gm: fx.GraphModule, chain: list[fx.Node], idx: torch.Tensor, channels: int) -> bool:
    """Whether every BN in ``chain`` can move in front of the gather (see ``scatter_bn``)."""
    return all(scatter_bn(module(gm, n), idx, channels) is not None
               for n in chain if is_module(gm, n, nn.BatchNorm2d))


def emit_conv_over_gather(gm: fx.GraphModule, x: fx.Node, conv_node: fx.Node, idx: torch.Tensor,
                          channels: int, split: bool) -> tuple[fx.Node, list[nn.Conv2d]]:
    """Insert convs that compute ``conv(x[:, idx])`` without the gather.

    Args:
        split: per-group convs over slices + concat (no extra MACs) instead of one dense conv
            (the group count times the MACs, one op).

    Returns:
        The output node and the new conv modules.
    """
    conv = module(gm, conv_node)
    if not split:
        new = dense_conv(conv, idx, channels)
        return gm.graph.call_module(add_module(gm, conv_node.target, "dense", new), (x,)), [new]
    outs, mods = [], []
    for g, (parts, new) in enumerate(split_convs(conv, idx)):
        inp = emit_slices(gm, x, parts)
        outs.append(gm.graph.call_module(add_module(gm, conv_node.target, f"g{g}", new), (inp,)))
        mods.append(new)
    return cat(gm, outs), mods


def _like(conv: nn.Conv2d, in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.dilation, groups=1, bias=conv.bias is not None, padding_mode=conv.padding_mode)
