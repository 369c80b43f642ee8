"""Lower channel gathers (CondenseNet's index layers) into ops every delegate runs."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgecn.layers.index import ChannelGather
from edgecn.passes.base import Pass, add_module, erase_dead, is_module, macs, module, register_pass, shape
from edgecn.passes.gather_forms import (channel_chain, chain_movable, emit_chain, emit_conv_over_gather,
                                        emit_slices, runs, selection)


@register_pass("index")
class LowerIndex(Pass):
    """Rewrites every ``ChannelGather`` (``index_select`` on channels) per ``cfg.index``.

    Forms of ``gather(x) -> BN -> ReLU -> conv(groups=G)``, all exact:

    - ``gather``: left as is (XNNPACK does not delegate it; TFLite makes it GATHER_ND).
    - ``selection_conv``: a 1x1 conv with a 0/1 matrix; costs len(idx) x C_in MACs per pixel.
    - ``dense``: BN/ReLU moved in front of the gather (``relu(BN_g(x[idx])) ==
      relu(BN_full(x))[idx]``) and the gather folded into one dense conv over all C_in
      inputs, weights summed where indices repeat. Removes the gather and the grouped conv,
      but costs C_in / (inputs per group) times the grouped conv's MACs (C times for
      CondenseNet). Left alone when two positions reading the same channel carry
      different BN parameters, or when the gather does not feed BN/ReLU -> conv.
    - ``slices``: slices + concat, when the index is at most ``cfg.max_slices`` runs of
      consecutive channels; no MACs.
    - ``late_gather``: BN/ReLU moved in front of the gather as for ``dense``, the gather and
      the grouped conv kept: no added MACs, and the gather reads a tensor of its own (the
      ReLU's) instead of the concat that other layers also read. litert-torch's int8
      conversion cannot lay out a quantized tensor read by both a concat and a gather.

    A gather on a flat vector that feeds a ``Linear`` (CondenseNet's classifier) is folded
    into the Linear as zero columns for every setting but ``gather``: a Linear is dense anyway.

    ``auto`` times the legal forms with ``measure`` when given. Otherwise, without
    ``cfg.gather_cost``, it removes every gather: slices when legal (no MACs, few ops), else
    the fewer-MAC of dense and selection conv (dense on a tie: it also makes the following
    shuffle and BN foldable). With ``cfg.gather_cost`` it prices each form in multiply-adds
    (a kept gather: the grouped conv plus ``gather_cost`` per gathered value) and takes the
    cheapest, so small layers fold dense and large ones keep the gather and the grouped conv
    (in the form ``cfg.kept_gather`` names: ``late_gather`` where BN/ReLU can move, else as it is).
    """

    keep = "gather"

    def sites(self, gm):
        return [n.name for n in gm.graph.nodes if is_module(gm, n, ChannelGather)]

    def measured(self, cfg):
        return cfg.index == "auto"

    def legal(self, gm, node, cfg):
        x = node.args[0]
        idx, channels, ndim = module(gm, node).index, shape(x)[1], len(shape(x))
        out = {"gather": "kept"}
        user = next(iter(node.users)) if len(node.users) == 1 else None
        if ndim == 2 and user is not None and is_module(gm, user, nn.Linear) and user.args[0] is node:
            out["dense"] = "a flat gather folds into the Linear that reads it as zero columns"
            return out
        if ndim in (2, 4):
            out["selection_conv"] = "a 0/1 selection matrix is exact for any index"
        n_runs = len(runs(idx))
        if n_runs <= cfg.max_slices:
            out["slices"] = f"the index is {n_runs} run(s) of consecutive channels"
        found = channel_chain(gm, node) if ndim == 4 else None
        if found is not None and chain_movable(gm, found[0], idx, channels):
            out["dense"] = "BN/ReLU move before the gather and the gather folds into the conv"
            out["late_gather"] = "BN/ReLU move before the gather, which then reads a tensor of its own"
        return out

    def decide(self, gm, node, cfg, legal):
        want = cfg.index
        if want == "gather":
            return "gather", "requested"
        if want in legal:
            return want, legal[want]
        if len(shape(node.args[0])) == 2 and "dense" in legal:
            return "dense", legal["dense"]
        if want != "auto":
            return "gather", f"{want!r} is not exact here; kept the gather"
        if cfg.gather_cost is not None:
            return self._cheapest(gm, node, cfg, legal)
        if "slices" in legal:
            return "slices", f"auto: {legal['slices']} (no MACs)"
        costs = {c: self._macs_after(gm, node, c) for c in ("dense", "selection_conv") if c in legal}
        if not costs:
            return "gather", "auto: no exact lowering applies"
        best = min(costs, key=lambda c: (costs[c], c != "dense"))
        return best, "auto: fewest MACs (" + ", ".join(f"{c} {m}" for c, m in costs.items()) + ")"

    def _cheapest(self, gm, node, cfg, legal):
        """The legal form of least priced cost (a kept gather: its conv plus the copied values)."""
        copied = cfg.gather_cost * len(module(gm, node).index) * math.prod(shape(node)[2:])
        kept = "late_gather" if cfg.kept_gather == "late_gather" and "late_gather" in legal else "gather"
        costs = {kept: self._conv_macs(gm, node) + copied}
        costs.update({c: self._macs_after(gm, node, c) for c in ("dense", "selection_conv") if c in legal})
        best = min(costs, key=lambda c: (costs[c], c != kept))
        listing = ", ".join(f"{c} {costs[c] / 1e6:.3g}M" for c in costs)
        return best, f"auto: cheapest at gather_cost {cfg.gather_cost:g} ({listing})"

    def _macs_after(self, gm, node, choice):
        x = node.args[0]
        idx, channels = module(gm, node).index, shape(x)[1]
        if choice == "selection_conv":
            return macs(selection(idx, channels, len(shape(x))), shape(node)) + self._conv_macs(gm, node)
        conv_node = channel_chain(gm, node)[1]
        conv = module(gm, conv_node)
        return macs(conv, shape(conv_node)) * channels // (conv.in_channels // conv.groups)

    def _conv_macs(self, gm, node):
        found = channel_chain(gm, node) if len(shape(node)) == 4 else None
        return macs(module(gm, found[1]), shape(found[1])) if found else 0

    def apply(self, gm, node, choice):
        x = node.args[0]
        idx, channels = module(gm, node).index, shape(x)[1]
        with gm.graph.inserting_before(node):
            if choice == "slices":
                node.replace_all_uses_with(emit_slices(gm, x, runs(idx)))
                erase_dead(gm, [node])
                return 0, 0
            if choice == "selection_conv":
                sel = selection(idx, channels, len(shape(x)))
                node.replace_all_uses_with(gm.graph.call_module(add_module(gm, node.target, "select", sel), (x,)))
                erase_dead(gm, [node])
                return 0, macs(sel, shape(node))
        user = next(iter(node.users))
        if is_module(gm, user, nn.Linear):
            return self._fold_linear(gm, node, user, idx, channels)
        return self._move_chain(gm, node, idx, channels, fold=choice == "dense")

    def _fold_linear(self, gm, node, user, idx, channels):
        lin = module(gm, user)
        new = nn.Linear(channels, lin.out_features, bias=lin.bias is not None)
        with torch.no_grad():
            new.weight.zero_()
            new.weight.index_add_(1, idx, lin.weight)
            if lin.bias is not None:
                new.bias.copy_(lin.bias)
        with gm.graph.inserting_before(user):
            out = gm.graph.call_module(add_module(gm, user.target, "dense", new), (node.args[0],))
        user.replace_all_uses_with(out)
        erase_dead(gm, [node, user])
        return macs(lin, None), macs(new, None)

    def _move_chain(self, gm, node, idx, channels, fold: bool):
        """BN/ReLU moved in front of the gather; then the gather folded into a dense conv
        (``dense``) or kept in front of the unchanged grouped conv (``late_gather``)."""
        chain, conv_node = channel_chain(gm, node)
        before = macs(module(gm, conv_node), shape(conv_node))
        with gm.graph.inserting_before(conv_node):
            moved = emit_chain(gm, node.args[0], chain, idx, channels)
            if not fold:
                late = gm.graph.call_module(add_module(gm, node.target, "late", ChannelGather(idx, channels)), (moved,))
                conv_node.replace_input_with(chain[-1] if chain else node, late)
                erase_dead(gm, [node, *chain])
                return before, before
            out, mods = emit_conv_over_gather(gm, moved, conv_node, idx, channels, split=False)
        conv_node.replace_all_uses_with(out)
        erase_dead(gm, [node, *chain, conv_node])
        return before, macs(mods[0], shape(conv_node))
