"""Make BatchNorms on shared conv outputs explicit, so int8 preparation cannot fold them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecn.passes.base import Pass, add_module, erase_dead, is_module, macs, module, register_pass, shape


@register_pass("multi_consumer_bn")
class ExplicitMultiConsumerBN(Pass):
    """Rewrites a BN whose input conv has other consumers as a depthwise 1x1 conv with bias.

    torchao's ``prepare_pt2e`` folds a BN into the conv before it even when that conv's
    output has other users: in a dense net the stem conv (and every conv whose output is
    concatenated) then silently hands BN(x) to the concat. A depthwise conv computes the
    same per-channel affine (``x * scale + shift``) and is not a BN, so nothing folds it.
    BNs whose input conv feeds only them are left alone (folding them is exact, and the
    ``fold_bn`` pass does it); so are BNs after anything but a conv.
    """

    def enabled(self, cfg):
        return cfg.explicit_multi_consumer_bn

    def sites(self, gm):
        return [n.name for n in gm.graph.nodes if is_module(gm, n, nn.BatchNorm2d)
                and _is_conv(gm, n.args[0]) and len(n.args[0].users) > 1]

    def legal(self, gm, node, cfg):
        out = {"keep": "kept"}
        if module(gm, node).running_mean is not None:
            out["depthwise_conv"] = "the conv before this BN has other consumers"
        return out

    def decide(self, gm, node, cfg, legal):
        if "depthwise_conv" in legal:
            return "depthwise_conv", legal["depthwise_conv"]
        return "keep", "the BN has no running statistics"

    def apply(self, gm, node, choice):
        new = affine(module(gm, node))
        with gm.graph.inserting_before(node):
            out = gm.graph.call_module(add_module(gm, node.target, "affine", new), (node.args[0],))
        node.replace_all_uses_with(out)
        erase_dead(gm, [node])
        return 0, macs(new, shape(node))


def _is_conv(gm, node) -> bool:
    return is_module(gm, node, nn.Conv2d) or (
        node.op == "call_function" and node.target in (F.conv2d, torch.conv2d))


@torch.no_grad()
def affine(bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A depthwise 1x1 conv with bias computing ``bn(x)`` (BN in eval mode)."""
    c = bn.num_features
    conv = nn.Conv2d(c, c, 1, groups=c, bias=True)
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.affine:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale + (bn.bias.double() if bn.affine else 0.0)
    conv.weight.copy_(scale.view(c, 1, 1, 1))
    conv.bias.copy_(shift)
    return conv
