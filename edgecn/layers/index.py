"""The index layer: a channel gather, what condensing leaves in front of a group conv."""

from __future__ import annotations

import torch
from torch import nn


class ChannelGather(nn.Module):
    """``x[:, index]`` along the channel axis (``torch.index_select(x, 1, index)``).

    Indices may repeat (two groups can read the same input channel). Deployment runtimes
    handle this op badly (XNNPACK does not delegate it; TensorRT will not run it in int8),
    which is why ``edgecn.passes`` lowers it per target.
    """

    def __init__(self, index: torch.Tensor | list[int], in_channels: int):
        super().__init__()
        self.in_channels = int(in_channels)
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long).clone())

    @property
    def out_channels(self) -> int:
        return int(self.index.numel())

    def forward(self, x):
        return torch.index_select(x, 1, self.index)

    def state_problems(self) -> list[str]:
        """What is wrong with loaded indices (each must name one of the input channels)."""
        bad = self.index[(self.index < 0) | (self.index >= self.in_channels)]
        return [f"channel index {int(bad[0])} is outside 0..{self.in_channels - 1}"] if bad.numel() else []

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}"
