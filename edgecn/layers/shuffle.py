"""Channel shuffle (ShuffleNet), applied after a condensed group conv."""

from __future__ import annotations

import torch
from torch import nn


def shuffle_permutation(channels: int, groups: int) -> torch.Tensor:
    """``perm`` such that ``shuffle(x) == x[:, perm]``."""
    per_group = channels // groups
    return torch.arange(channels).view(groups, per_group).t().reshape(-1)


class ChannelShuffle(nn.Module):
    """Interleave ``groups`` contiguous channel blocks: output ``j*G + i`` is input ``i*d + j``."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = int(groups)

    def forward(self, x):
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w)
        return x.transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
