"""Model preparation shared by the PT2E int8 recipes."""

from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def bn_as_depthwise_conv(bn: nn.BatchNorm2d) -> nn.Conv2d:
    """The eval-mode BatchNorm ``bn`` as an exactly equivalent 1x1 depthwise conv with bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv = nn.Conv2d(bn.num_features, bn.num_features, 1, groups=bn.num_features, bias=True)
    conv.weight.copy_(scale.view(-1, 1, 1, 1))
    conv.bias.copy_(bn.bias - bn.running_mean * scale)
    return conv


def explicit_batchnorms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm2d replaced by its depthwise-conv form.

    Why: a BatchNorm left in the graph makes torchao's ``convert_pt2e`` run its QAT
    conv-BN folding, which re-exports ~100 pattern graphs (about 40 s on 2 cores) for
    nothing in post-training quantization; and ``prepare_pt2e`` folds a BN into a conv
    even when the conv's output has other users (dense connectivity: the concat then
    silently receives BN(x), an output error of 1e-2 to 1.5 before any quantization). A
    depthwise 1x1 conv is quantized per channel with no weight error (one weight per
    channel) and is delegated by every backend. Convs directly followed by a BN should
    be folded beforehand (``edgecn.passes``, ``fold_bn``).
    """
    out = copy.deepcopy(model).eval()
    _replace(out)
    return out


def _replace(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, bn_as_depthwise_conv(child))
        else:
            _replace(child)
