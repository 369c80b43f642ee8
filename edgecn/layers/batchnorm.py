"""An eval-mode BatchNorm as the per-channel affine map it computes, and the exact layers that
compute the same map (a conv with the BN folded in, a depthwise 1x1 conv).

The one home of this arithmetic: the ``fold_bn`` and ``multi_consumer_bn`` rewrites and the
int8 preparation all call it. Computed in float64 and rounded once into the new layer's
float32 weights, so the rewritten layer matches the BN as closely as float32 allows.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecn.errors import EdgecnError


@torch.no_grad()
def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` in float64 with ``bn(x) == x * scale + shift`` per channel (eval mode).

    Raises:
        EdgecnError: the BN has no running statistics (it normalises by each batch's own
            statistics, which no fixed affine map reproduces).
    """
    if bn.running_mean is None or bn.running_var is None:
        raise EdgecnError("a BatchNorm without running statistics (track_running_stats=False) cannot be "
                          "written as a fixed per-channel affine map",
                          "train the model with track_running_stats=True, or build it in fp32 without BN rewrites")
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.affine:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale + (bn.bias.double() if bn.affine else 0.0)
    return scale, shift


@torch.no_grad()
def as_depthwise_conv(bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A depthwise 1x1 conv with bias computing ``bn(x)``."""
    scale, shift = bn_affine(bn)
    c = bn.num_features
    conv = nn.Conv2d(c, c, 1, groups=c, bias=True)
    conv.weight.copy_(scale.view(c, 1, 1, 1))
    conv.bias.copy_(shift)
    return conv


@torch.no_grad()
def fold_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias computing ``bn(conv(x))``."""
    scale, shift = bn_affine(bn)
    new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, True, conv.padding_mode)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    new.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
    new.bias.copy_(bias * scale + shift)
    return new
