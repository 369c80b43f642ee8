"""CondenseNet's condensed classifier, trained with a feature mask so condensing is exact.

The reference implementation drops half of the classifier's input features (smallest L1
norm) only at conversion time, which changes the logits. Here the drop happens at the
start of the optimisation stage, as a mask, and the second half of training adapts to it:
the deployable ``CondensedLinear`` then computes exactly what the trained model computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecn.layers.index import ChannelGather


class LearnedLinear(nn.Module):
    """Linear layer that keeps ``keep`` of its input features once ``set_progress`` >= 0.5."""

    def __init__(self, in_features: int, out_features: int, keep: float = 0.5):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.kept = max(1, int(in_features * keep))
        self.register_buffer("mask", torch.ones(in_features))

    def forward(self, x):
        return F.linear(x * self.mask, self.linear.weight, self.linear.bias)

    @torch.no_grad()
    def set_progress(self, progress: float) -> int:
        if progress < 0.5 or int(self.mask.sum()) == self.kept:
            return 0
        order = torch.sort(self.linear.weight.abs().sum(0), stable=True).indices
        self.mask.zero_()
        self.mask[order[self.in_features - self.kept:]] = 1
        return 1

    @torch.no_grad()
    def condense(self, strict: bool = True) -> "CondensedLinear":
        index = torch.nonzero(self.mask).flatten()
        if index.numel() != self.kept:
            if strict:
                from edgecn.errors import EdgecnError
                raise EdgecnError("the classifier has not been condensed yet (training stopped before its optimisation stage)",
                                  "condense a checkpoint from the end of training")
            index = torch.arange(self.kept)
        out = CondensedLinear(self.in_features, self.out_features, index)
        out.linear.weight.copy_(self.linear.weight[:, index])
        out.linear.bias.copy_(self.linear.bias)
        return out


class CondensedLinear(nn.Module):
    """Index layer -> Linear over the kept features."""

    def __init__(self, in_features: int, out_features: int, index: torch.Tensor):
        super().__init__()
        self.index = ChannelGather(index, in_features)
        self.linear = nn.Linear(len(index), out_features)

    def forward(self, x):
        return self.linear(self.index(x))
