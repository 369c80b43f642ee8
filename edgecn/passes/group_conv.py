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
      ``cfg.min_group_outputs`` outputs and input and output channels per group that are
      multiples of ``cfg.group_multiple`` (k = G, i.e. ``dense``, when none does).
      XNNPACK's int8 grouped conv is fast only with enough outputs per group: a narrow
      group costs far more per multiply-add than the zeros a merge adds. TensorRT's int8
      grouped-conv kernels want channels per group in multiples of 4, else the layer falls
      back to slower tactics or to fp16/fp32. Convs that already meet both, and depthwise
      convs (one input per group, which have kernels of their own), are left alone.

    - ``merge_K`` (offered per site, for every divisor 1 < K <= G): exactly K neighbouring
      groups per block-diagonal group, whatever the rule says. What a cost table chooses
      between (``edgecn.cost``): the best K depends on the layer and on the CPU.

    ``auto`` times the three with ``measure`` when given, else keeps ``native``: every
    runtime measured here runs grouped convs natively and the others cost ops or MACs.
    A ``split`` is left to the shuffle pass for a conv that reads a channel shuffle (through
    BN/ReLU) when ``cfg.shuffle == "fold"``: that pass splits it and drops the shuffle at once.
    """

    keep = "native"
    _rule = (16, 1)

    def run(self, gm, cfg, example, measure=None, choices=None):
        self._rule = (cfg.min_group_outputs, cfg.group_multiple)
        return super().run(gm, cfg, example, measure, choices)

    def sites(self, gm):
        return [n.name for n in gm.graph.nodes if is_module(gm, n, nn.Conv2d) and module(gm, n).groups > 1]

    def measured(self, cfg):
        return cfg.group_conv == "auto"

    def legal(self, gm, node, cfg):
        out = {"native": "kept", "dense": "a block-diagonal dense conv is exact"}
        if not (cfg.shuffle == "fold" and _reads_shuffle(gm, node)):
            out["split"] = "per-group convs over channel slices are exact"
        conv = module(gm, node)
        k = merge_factor(conv, cfg.min_group_outputs, cfg.group_multiple)
        if k > 1:
            out["merge"] = (f"merging {k} groups gives {conv.in_channels * k // conv.groups} inputs and "
                            f"{conv.out_channels * k // conv.groups} outputs per group")
        if conv.in_channels != conv.groups:  # depthwise convs have kernels of their own
            for j in range(2, conv.groups + 1):  # j = G: one group, what a rule-based merge gives a narrow layer
                if conv.groups % j == 0:
                    out[f"merge_{j}"] = f"{j} groups per block-diagonal group"
        return out

    def decide(self, gm, node, cfg, legal):
        want = cfg.group_conv
        if want == "auto":
            return "native", "auto: grouped convs run natively on every runtime measured"
        if want == "merge":
            conv = module(gm, node)
            return ("merge", legal["merge"]) if "merge" in legal else (
                "native", f"{conv.in_channels // conv.groups} inputs and {conv.out_channels // conv.groups} outputs "
                          "per group meet the target's rule")
        if want in legal:
            return want, "requested" if want != "native" else "kept"
        return "native", "reads a channel shuffle: the shuffle pass splits it while removing the shuffle"

    def apply(self, gm, node, choice):
        conv = module(gm, node)
        if choice == "merge" or choice.startswith("merge_"):
            k = merge_factor(conv, *self._rule) if choice == "merge" else int(choice[len("merge_"):])
            new = merge_groups(conv, conv.groups // k)
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


def merge_factor(conv: nn.Conv2d, min_outputs: int, multiple: int = 1) -> int:
    """How many neighbouring groups of ``conv`` to merge (1: none) so that each group has at
    least ``min_outputs`` outputs and input and output channels that are multiples of ``multiple``."""
    cin, cout = conv.in_channels // conv.groups, conv.out_channels // conv.groups
    if cin == 1:
        return 1  # depthwise: XNNPACK and TensorRT run it with kernels of its own, fast as it is

    def fits(k: int) -> bool:
        return k * cout >= min_outputs and (k * cin) % multiple == 0 and (k * cout) % multiple == 0

    if fits(1):
        return 1
    return next((k for k in range(2, conv.groups + 1) if conv.groups % k == 0 and fits(k)), conv.groups)


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
