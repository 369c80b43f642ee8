"""SqueezeNet's Fire module, with the paper's optional bypass connections."""

from __future__ import annotations

import torch
from torch import nn


class Fire(nn.Module):
    """squeeze 1x1 -> ReLU -> [expand 1x1, expand 3x3] -> ReLU -> concat (+ bypass).

    Args:
        in_channels: input channels.
        squeeze: squeeze 1x1 filters.
        expand1x1: expand 1x1 filters.
        expand3x3: expand 3x3 filters.
        bypass: ``None``, ``"simple"`` (identity, needs in == out) or ``"conv"`` (a 1x1 conv,
            the paper's complex bypass).
    """

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int,
                 bypass: str | None = None):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
        self.squeeze_act = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_act = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_act = nn.ReLU()
        out = expand1x1 + expand3x3
        if bypass == "simple" and in_channels != out:
            raise ValueError(f"a simple bypass needs equal in/out channels ({in_channels} != {out})")
        self.bypass_kind = bypass
        self.bypass = nn.Conv2d(in_channels, out, 1) if bypass == "conv" else None

    @property
    def out_channels(self) -> int:
        return self.expand1x1.out_channels + self.expand3x3.out_channels

    def forward(self, x):
        s = self.squeeze_act(self.squeeze(x))
        y = torch.cat([self.expand1x1_act(self.expand1x1(s)), self.expand3x3_act(self.expand3x3(s))], 1)
        if self.bypass_kind == "simple":
            y = y + x
        elif self.bypass is not None:
            y = y + self.bypass(x)
        return y
