"""Remove channel shuffles (TFLite makes each one 3 TRANSPOSEs and 2 RESHAPEs)."""

from __future__ import annotations

import torch
from torch import nn

from edgecn.layers.index import ChannelGather
from edgecn.layers.shuffle import ChannelShuffle, shuffle_permutation
from edgecn.passes.base import Pass, add_module, erase_dead, is_module, macs, module, register_pass, shape
from edgecn.passes.gather_forms import channel_chain, chain_movable, emit_chain, emit_conv_over_gather, selection

_FOLDS = ("fold_producer", "fold_consumer", "split", "selection_conv")


@register_pass("shuffle")
class RemoveShuffle(Pass):
    """Rewrites every ``ChannelShuffle`` (``x[:, perm]`` for a fixed permutation).

    Forms, all exact, from cheapest:

    - ``fold_producer``: the shuffle reads a dense conv (groups=1) used only by it: the
      conv's output channels are permuted instead. Free.
    - ``fold_consumer``: the shuffle feeds (through BN/ReLU, whose parameters are permuted
      as they move in front of it) a dense conv: its input columns are permuted. Free.
    - ``split``: that consumer is grouped (CondenseNet's 3x3 conv, whose groups mix all 1x1
      groups, so no permutation of grouped weights absorbs the shuffle): one conv per group
      over the slices of the un-shuffled input it reads, then a concat. Same MACs; G convs,
      G concats and about G x G slices instead of one shuffle.
    - ``selection_conv``: a 1x1 conv with the permutation matrix: one op, C x C MACs per pixel.

    - ``gather``: ``x[:, perm]`` as a channel gather (index_select): 4-D ops only, which
      litert-torch's int8 conversion needs (it cannot move the shuffle's 5-D view to NHWC).
    - ``late_shuffle`` / ``late_gather``: the shuffle kept (as it is, or as a gather) behind the
      BN/ReLU that followed it, whose parameters are permuted as they move in front: the BN
      then follows the conv that made the shuffled tensor and folds into it (``fold_bn``),
      and the ReLU fuses into that conv, instead of running as a depthwise conv of its own.

    ``fold`` takes the first legal form in this order; ``keep`` leaves shuffles alone;
    ``auto`` times the legal forms (and keeping) with ``measure`` when given, else takes a
    free fold when there is one and keeps the shuffle otherwise (XNNPACK delegates it);
    ``gather`` takes a free fold when there is one and the gather otherwise. Both keep it
    behind its BN/ReLU (``late_*``) where those can move and ``cfg.shuffle_behind_bn`` is set.
    """

    def sites(self, gm):
        return [n.name for n in gm.graph.nodes if is_module(gm, n, ChannelShuffle)]

    def measured(self, cfg):
        return cfg.shuffle == "auto"

    def legal(self, gm, node, cfg):
        out = {"keep": "kept"}
        x = node.args[0]
        if len(shape(x)) != 4:
            return out
        if is_module(gm, x, nn.Conv2d) and module(gm, x).groups == 1 and len(x.users) == 1:
            out["fold_producer"] = "the shuffle reads a dense conv: its output channels are permuted"
        found = channel_chain(gm, node)
        if found is not None and module(gm, found[1]).groups == 1:
            out["fold_consumer"] = "the shuffle feeds a dense conv: its input columns are permuted"
        elif found is not None:
            out["split"] = "the shuffle feeds a grouped conv: split into per-group convs over slices"
        out["selection_conv"] = "a 1x1 permutation conv is exact for any shuffle"
        out["gather"] = "a channel gather with the permutation is exact for any shuffle"
        if cfg.shuffle_behind_bn and found is not None and any(is_module(gm, n, nn.BatchNorm2d) for n in found[0]) \
                and chain_movable(gm, found[0], shuffle_permutation(shape(x)[1], module(gm, node).groups), shape(x)[1]):
            why = "BN/ReLU move in front, so the BN can fold into the conv before them"
            out["late_shuffle"], out["late_gather"] = f"kept; {why}", f"a channel gather; {why}"
        return out

    def decide(self, gm, node, cfg, legal):
        if cfg.shuffle == "keep":
            return "keep", "requested"
        for choice in _FOLDS if cfg.shuffle == "fold" else _FOLDS[:2]:
            if choice in legal:
                return choice, legal[choice]
        if cfg.shuffle == "gather" and "gather" in legal:
            if "late_gather" in legal:
                return "late_gather", "no free fold: " + legal["late_gather"]
            return "gather", "no free fold: " + legal["gather"]
        if "late_shuffle" in legal:
            return "late_shuffle", "auto: no free fold (the shuffle is delegated as is); " + legal["late_shuffle"]
        return "keep", "auto: no free fold (the shuffle is delegated as is)"

    def apply(self, gm, node, choice):
        x = node.args[0]
        channels = shape(x)[1]
        perm = shuffle_permutation(channels, module(gm, node).groups)
        if choice == "fold_producer":
            return self._fold_producer(gm, node, x, perm)
        if choice == "gather":
            gather = ChannelGather(perm, channels)
            with gm.graph.inserting_before(node):
                node.replace_all_uses_with(gm.graph.call_module(add_module(gm, node.target, "gather", gather), (x,)))
            erase_dead(gm, [node])
            return 0, 0
        if choice in ("late_shuffle", "late_gather"):
            return self._move_chain(gm, node, x, perm, channels, gather=choice == "late_gather")
        if choice == "selection_conv":
            sel = selection(perm, channels, 4)
            with gm.graph.inserting_before(node):
                node.replace_all_uses_with(gm.graph.call_module(add_module(gm, node.target, "perm", sel), (x,)))
            erase_dead(gm, [node])
            return 0, macs(sel, shape(node))
        chain, conv_node = channel_chain(gm, node)
        before = macs(module(gm, conv_node), shape(conv_node))
        with gm.graph.inserting_before(conv_node):
            moved = emit_chain(gm, x, chain, perm, channels)
            out, mods = emit_conv_over_gather(gm, moved, conv_node, perm, channels, split=choice == "split")
        conv_node.replace_all_uses_with(out)
        erase_dead(gm, [node, *chain, conv_node])
        return before, sum(macs(m, shape(conv_node)) for m in mods)

    def _fold_producer(self, gm, node, x, perm):
        conv = module(gm, x)
        new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                        conv.dilation, 1, conv.bias is not None, conv.padding_mode)
        with torch.no_grad():
            new.weight.copy_(conv.weight[perm])
            if conv.bias is not None:
                new.bias.copy_(conv.bias[perm])
        with gm.graph.inserting_before(node):
            out = gm.graph.call_module(add_module(gm, x.target, "shuffled", new), tuple(x.args))
        node.replace_all_uses_with(out)
        erase_dead(gm, [x, node])
        return macs(conv, shape(x)), macs(new, shape(x))

    def _move_chain(self, gm, node, x, perm, channels, gather: bool):
        """The BN/ReLU behind the shuffle re-emitted in front of it (parameters permuted), then the
        shuffle (or its gather) on their output; the conv that read them reads it instead."""
        chain, conv_node = channel_chain(gm, node)
        with gm.graph.inserting_before(conv_node):
            moved = emit_chain(gm, x, chain, perm, channels)
            if gather:
                target = add_module(gm, node.target, "gather", ChannelGather(perm, channels))
            else:
                target = node.target
            shuffled = gm.graph.call_module(target, (moved,))
        conv_node.replace_input_with(chain[-1], shuffled)
        erase_dead(gm, [node, *chain])
        return 0, 0
