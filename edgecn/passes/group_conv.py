"""Lower grouped convolutions for runtimes or quantizers that handle them badly."""

from __future__ import annotations

import torch
from torch import nn

from edgecn.layers.shuffle import ChannelShuffle
from edgecn.passes.base import Pass, erase_dead, is_module, is_relu, macs, module, register_pass, shape
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

    ``auto`` times the three with ``measure`` when given, else keeps ``native``: every
    runtime measured here runs grouped convs natively and the others cost ops or MACs.
    A ``split`` is left to the shuffle pass for a conv that reads a channel shuffle (through
    BN/ReLU) when ``cfg.shuffle == "fold"``: that pass splits it and drops the shuffle at once.
    """

    keep = "native"

    def sites(self, gm):
        return [n.name for n in gm.graph.nodes if is_module(gm, n, nn.Conv2d) and module(gm, n).groups > 1]

    def measured(self, cfg):
        return cfg.group_conv == "auto"

    def legal(self, gm, node, cfg):
        out = {"native": "kept", "dense": "a block-diagonal dense conv is exact"}
        if not (cfg.shuffle == "fold" and _reads_shuffle(gm, node)):
            out["split"] = "per-group convs over channel slices are exact"
        return out

    def decide(self, gm, node, cfg, legal):
        want = cfg.group_conv
        if want == "auto":
            return "native", "auto: grouped convs run natively on every runtime measured"
        if want in legal:
            return want, "requested" if want != "native" else "kept"
        return "native", "reads a channel shuffle: the shuffle pass splits it while removing the shuffle"

    def apply(self, gm, node, choice):
        conv = module(gm, node)
        channels = conv.in_channels
        with gm.graph.inserting_before(node):
            out, mods = emit_conv_over_gather(gm, node.args[0], node, torch.arange(channels), channels,
                                              split=choice == "split")
        node.replace_all_uses_with(out)
        erase_dead(gm, [node])
        return macs(conv, shape(node)), sum(macs(m, shape(node)) for m in mods)


def _reads_shuffle(gm, node) -> bool:
    cur = node.args[0]
    while is_module(gm, cur, nn.BatchNorm2d) or is_relu(gm, cur):
        if len(cur.users) != 1:
            return False
        cur = cur.args[0]
    return is_module(gm, cur, ChannelShuffle) and len(cur.users) == 1
