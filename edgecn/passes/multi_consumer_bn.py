"""Run a BatchNorm on a shared conv output as a depthwise 1x1 conv (a form every backend delegates)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecn.layers.batchnorm import as_depthwise_conv
from edgecn.passes.base import Pass, add_module, erase_dead, is_module, macs, module, register_pass, shape


@register_pass("multi_consumer_bn")
class ExplicitMultiConsumerBN(Pass):
    """Rewrites a BN whose input conv has other consumers as a depthwise 1x1 conv with bias.

    Such a BN cannot fold (the conv's other users need the un-normalised values), so it stays
    a layer of its own; as a depthwise conv it computes the same per-channel affine
    (``x * scale + shift``) in a form each runtime delegates, in every precision. (Int8
    correctness does not depend on this pass: the int8 preparation writes every remaining BN
    this way before PT2E, which would otherwise fold it into the shared conv.) BNs whose input
    conv feeds only them are left alone (``fold_bn`` folds them); so are BNs after anything
    but a conv.
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
        new = as_depthwise_conv(module(gm, node))
        with gm.graph.inserting_before(node):
            out = gm.graph.call_module(add_module(gm, node.target, "affine", new), (node.args[0],))
        node.replace_all_uses_with(out)
        erase_dead(gm, [node])
        return 0, macs(new, shape(node))


def _is_conv(gm, node) -> bool:
    return is_module(gm, node, nn.Conv2d) or (
        node.op == "call_function" and node.target in (F.conv2d, torch.conv2d))
