"""Lower grouped convolutions for runtimes or quantizers that handle them badly."""

from __future__ import annotations

import torch
from torch import nn

from edgecn.layers.shuffle import ChannelShuffle
from edgecn.passes.base import Pass, add_module, erase_dead, is_module, is_relu, macs, module, register_pass, shape
from edgecn.passes.gather_forms import emit_conv_over_gather


@register_pass("group_conv")
class LowerGroupConv(Pass):
    """Rewrites every ``Conv2d`` with ``groups > 1`` per ``cfg.group_conv``.

    - ``native``: left as is (XNNPACK in ExecuTorch and LiteRT, and TensorRT, run it).
    - ``split``: one groups=1 conv per group over a channel slice, then a concat: same
      MACs, G convs + G slices + 1 concat instead of one op.
    - ``dense``: one block-diagonal dense conv (zeros off the diagonal blocks): one op, G
      times the MACs. For delegates without grouped conv, and TensorRT int8 when the
      channels per group are not a multiple of 4.
    - ``merge``: k neighbouring groups merged into one block-diagonal group (G/k groups,
      k times the MACs), with k the smallest divisor of G that gives each group at least
      ``cfg.min_group_outputs`` outputs (k = G, i.e. ``dense``, when the layer has fewer).
      XNNPACK's int8 grouped conv is fast only with enough outputs per group: a narrow
      group costs far more per multiply-add than the zeros a merge adds. Convs that already
      have enough outputs per group are left alone.

    ``auto`` times the three with ``measure`` when given, else keeps ``native``: every
    runtime measured here runs grouped convs natively and the others cost ops or MACs.
    A ``split`` is left to the shuffle pass for a conv that reads a channel shuffle (through
    BN/ReLU) when ``cfg.shuffle == "fold"``: that pass splits it and drops the shuffle at once.
    """

    keep = "native"
    _min_outputs = 16

    def run(self, gm, cfg, example, measure=None):
        self._min_outputs = cfg.min_group_outputs
        return super().run(gm, cfg, example, measure)

    def sites(self, gm):
        return [n.name for n in gm.graph.nodes if is_module(gm, n, nn.Conv2d) and module(gm, n).groups > 1]

    def measured(self, cfg):
        return cfg.group_conv == "auto"

    def legal(self, gm, node, cfg):
        out = {"native": "kept", "dense": "a block-diagonal dense conv is exact"}
        if not (cfg.shuffle == "fold" and _reads_shuffle(gm, node)):
            out["split"] = "per-group convs over channel slices are exact"
        k = merge_factor(module(gm, node), cfg.min_group_outputs)
        if k > 1:
            out["merge"] = f"merging {k} groups gives {module(gm, node).out_channels * k // module(gm, node).groups} outputs per group"
        return out

    def decide(self, gm, node, cfg, legal):
        want = cfg.group_conv
        if want == "auto":
            return "native", "auto: grouped convs run natively on every runtime measured"
        if want == "merge":
            return ("merge", legal["merge"]) if "merge" in legal else (
                "native", f"already {module(gm, node).out_channels // module(gm, node).groups} or more outputs per group")
        if want in legal:
            return want, "requested" if want != "native" else "kept"
        return "native", "reads a channel shuffle: the shuffle pass splits it while removing the shuffle"

    def apply(self, gm, node, choice):
        conv = module(gm, node)
        if choice == "merge":
            new = merge_groups(conv, conv.groups // merge_factor(conv, self._min_outputs))
            with gm.graph.inserting_before(node):
                out = gm.graph.call_module(add_module(gm, node.target, "merged", new), tuple(node.args))
            node.replace_all_uses_with(out)
            erase_dead(gm, [node])
            return macs(conv, shape(node)), macs(new, shape(node))
        channels = conv.in_channels
        with gm.graph.inserting_before(node):
            out, mods = emit_conv_over_gather(gm, node.args[0], node, torch.arange(channels), channels,
                                              split=choice == "split")
        node.replace_all_uses_with(out)
        erase_dead(gm, [node])
        return macs(conv, shape(node)), sum(macs(m, shape(node)) for m in mods)


def merge_factor(conv: nn.Conv2d, min_outputs: int) -> int:
    """How many neighbouring groups of ``conv`` to merge so each has ``min_outputs`` outputs (1: none)."""
    per_group = conv.out_channels // conv.groups
    if per_group >= min_outputs:
        return 1
    return next((k for k in range(2, conv.groups + 1) if conv.groups % k == 0 and k * per_group >= min_outputs),
                conv.groups)


@torch.no_grad()
def merge_groups(conv: nn.Conv2d, groups: int) -> nn.Conv2d:
    """``conv`` with its G groups merged k = G/groups at a time into block-diagonal groups (exact)."""
    k = conv.groups // groups
    cin, cout = conv.in_channels // conv.groups, conv.out_channels // conv.groups
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, groups, conv.bias is not None, conv.padding_mode)
    new.weight.zero_()
    for g in range(conv.groups):
        j = g % k  # position of group g inside its merged group
        new.weight[g * cout:(g + 1) * cout, j * cin:(j + 1) * cin] = conv.weight[g * cout:(g + 1) * cout]
    if conv.bias is not None:
        new.bias.copy_(conv.bias)
    return new


def _reads_shuffle(gm, node) -> bool:
    cur = node.args[0]
    while is_module(gm, cur, nn.BatchNorm2d) or is_relu(gm, cur):
        if len(cur.users) != 1:
            return False
        cur = cur.args[0]
    return is_module(gm, cur, ChannelShuffle) and len(cur.users) == 1
