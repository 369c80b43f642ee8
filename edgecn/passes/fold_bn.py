"""Fold BatchNorms into the convolutions before them."""

from __future__ import annotations

from torch import nn

from edgecn.layers.batchnorm import fold_into_conv
from edgecn.passes.base import Pass, add_module, erase_dead, is_module, macs, module, register_pass, shape


@register_pass("fold_bn")
class FoldBatchNorm(Pass):
    """Rewrites ``conv -> BN`` as one conv with scaled weights and a bias.

    Only when the conv's output is used by the BN alone: another consumer would need the
    un-normalised values (see ``multi_consumer_bn``). BNs after anything else (a concat, a
    pool, a gather) and BNs without running statistics are left alone. Runs after the
    shuffle pass, so a BN that followed a shuffle folded into a dense conv folds too.
    """

    def enabled(self, cfg):
        return cfg.fold_bn

    def sites(self, gm):
        return [n.name for n in gm.graph.nodes if is_module(gm, n, nn.BatchNorm2d)
                and is_module(gm, n.args[0], nn.Conv2d) and len(n.args[0].users) == 1]

    def legal(self, gm, node, cfg):
        out = {"keep": "kept"}
        if module(gm, node).running_mean is not None:
            out["fold"] = "the conv feeds only this BN"
        return out

    def decide(self, gm, node, cfg, legal):
        return ("fold", legal["fold"]) if "fold" in legal else ("keep", "the BN has no running statistics")

    def apply(self, gm, node, choice):
        conv_node = node.args[0]
        conv, bn = module(gm, conv_node), module(gm, node)
        new = fold_into_conv(conv, bn)
        with gm.graph.inserting_before(node):
            out = gm.graph.call_module(add_module(gm, conv_node.target, "bn", new), tuple(conv_node.args))
        node.replace_all_uses_with(out)
        erase_dead(gm, [conv_node, node])
        return macs(conv, shape(conv_node)), macs(new, shape(conv_node))
