"""Pre-activation convolution: BN, ReLU, then a (possibly grouped) convolution."""

from __future__ import annotations

from torch import nn

from edgecn.errors import EdgecnError


class BnReluConv(nn.Module):
    """BN -> ReLU -> Conv2d (no bias), as in DenseNet and CondenseNet layers."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        for what, n in (("input", in_channels), ("output", out_channels)):
            if n % groups:
                raise EdgecnError(
                    f"{groups} groups do not divide the {n} {what} channels of a {kernel_size}x{kernel_size} conv",
                    "choose a group count that divides the channel counts (e.g. a power of two with growth rates that are multiples of it)")
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=False)

    def forward(self, x):
        return self.conv(self.relu(self.norm(x)))
