"""Model preparation shared by the PT2E int8 recipes."""

from __future__ import annotations

import copy

from torch import nn

from edgecn.layers.batchnorm import as_depthwise_conv


def explicit_batchnorms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm2d replaced by its depthwise-conv form.

    Why: a BatchNorm left in the graph makes torchao's ``convert_pt2e`` run its QAT
    conv-BN folding, which re-exports ~100 pattern graphs (about 40 s on 2 cores) for
    nothing in post-training quantization; and ``prepare_pt2e`` folds a BN into a conv
    even when the conv's output has other users (dense connectivity: the concat then
    silently receives BN(x), an output error of 1e-2 to 1.5 before any quantization). A
    depthwise 1x1 conv is quantized per channel with no weight error (one weight per
    channel) and is delegated by every backend. Convs directly followed by a BN should
    be folded beforehand (``edgecn.passes``, ``fold_bn``): a fold costs nothing at run time.
    """
    out = copy.deepcopy(model).eval()
    _replace(out)
    return out


def _replace(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, as_depthwise_conv(child))
        else:
            _replace(child)
