"""Average pools as depthwise convs, for delegates that do not take an int8 average pool."""

from __future__ import annotations

import torch
from torch import nn

from edgecn.passes.base import Pass, add_module, erase_dead, is_module, macs, module, register_pass, shape


@register_pass("avg_pool")
class AvgPoolAsDepthwiseConv(Pass):
    """Rewrites ``AvgPool2d(k, stride=k)`` as a k x k depthwise conv with weights 1/(k*k).

    LiteRT's XNNPACK delegate does not take an int8 ``AVERAGE_POOL_2D``: it runs on TFLite's
    own kernel between two delegate partitions (13x slower than the depthwise conv, measured
    on CondenseNet-74's transitions). The conv computes the same mean exactly in float; in
    int8 the weight 1/(k*k) is a power of two for k = 2 and 4, so it quantizes without error.
    Left alone: pools with padding, ceil mode, a window other than the stride (overlapping
    windows are still exact, but no target needs them), and when ``cfg.avg_pool == "keep"``.
    """

    def enabled(self, cfg):
        return cfg.avg_pool != "keep"

    def sites(self, gm):
        return [n.name for n in gm.graph.nodes if is_module(gm, n, nn.AvgPool2d) and _plain(module(gm, n))]

    def legal(self, gm, node, cfg):
        return {"keep": "kept", "depthwise_conv": "a depthwise conv with weights 1/(k*k) computes the same mean"}

    def decide(self, gm, node, cfg, legal):
        return cfg.avg_pool, "requested"

    def apply(self, gm, node, choice):
        pool, channels = module(gm, node), shape(node.args[0])[1]
        conv = depthwise_mean(channels, _pair(pool.kernel_size))
        with gm.graph.inserting_before(node):
            out = gm.graph.call_module(add_module(gm, node.target, "dwconv", conv), (node.args[0],))
        node.replace_all_uses_with(out)
        erase_dead(gm, [node])
        return 0, macs(conv, shape(node))


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _plain(pool: nn.AvgPool2d) -> bool:
    stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    return (_pair(pool.kernel_size) == stride and _pair(pool.padding) == (0, 0) and not pool.ceil_mode
            and pool.divisor_override is None)


@torch.no_grad()
def depthwise_mean(channels: int, kernel: tuple[int, int]) -> nn.Conv2d:
    """A depthwise conv averaging each ``kernel`` window (stride = kernel) of every channel."""
    conv = nn.Conv2d(channels, channels, kernel, stride=kernel, groups=channels, bias=False)
    conv.weight.fill_(1.0 / (kernel[0] * kernel[1]))
    return conv
