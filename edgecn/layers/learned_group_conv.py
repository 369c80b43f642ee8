"""CondenseNet's learned group convolution and the index + group conv it condenses into.

Training form (``LearnedGroupConv``): BN -> ReLU -> 1x1 conv whose weight is multiplied by
a 0/1 mask. Output filter ``o`` belongs to group ``o % G`` (the interleaved assignment of the
reference implementation). Over the first half of training there are C-1 condensing stages;
at each transition every group drops, of the input channels it still has, the ``in/C`` with
the smallest L1 norm summed over its filters. At the end 1/C of each group's inputs remain.

Deployable form (``CondensedGroupConv``): gather the kept channels of every group (an index
layer), BN -> ReLU on the gathered channels, a standard conv with ``groups=G`` and a channel
shuffle that restores the original output order. Both forms compute the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecn.errors import EdgecnError
from edgecn.layers.index import ChannelGather
from edgecn.layers.shuffle import ChannelShuffle


def condensing_stage(progress: float, condense_factor: int) -> int:
    """Stage at training progress in [0, 1]: 0..C-2 are condensing stages, C-1 is optimisation.

    The C-1 transitions are spread evenly over the first half of training (progress < 0.5).
    """
    if condense_factor <= 1:
        return 0
    if progress >= 0.5:
        return condense_factor - 1
    return min(condense_factor - 1, int(progress * 2 * (condense_factor - 1) + 1e-9))


class LearnedGroupConv(nn.Module):
    """BN -> ReLU -> masked 1x1 conv, pruned to ``groups`` groups during training.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        groups: G, the number of groups of the condensed conv.
        condense_factor: C; each group keeps ``in_channels / C`` inputs. Defaults to G.
        dropout: dropout rate before the conv (the reference uses 0).
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 4,
                 condense_factor: int | None = None, dropout: float = 0.0):
        super().__init__()
        condense_factor = condense_factor or groups
        _check_divides(in_channels, out_channels, groups, condense_factor)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.condense_factor = condense_factor
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.register_buffer("mask", torch.ones_like(self.conv.weight))
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))

    @property
    def kept_per_group(self) -> int:
        return self.in_channels // self.condense_factor

    def forward(self, x):
        x = self.drop(self.relu(self.norm(x)))
        return F.conv2d(x, self.conv.weight * self.mask)

    def state_problems(self) -> list[str]:
        """What is wrong with a loaded condensing stage (it counts 0..C-1)."""
        stage, last = int(self.stage), max(0, self.condense_factor - 1)
        return [] if 0 <= stage <= last else [f"condensing stage {stage} is outside 0..{last}"]

    # -- condensing ---------------------------------------------------------------------
    def group_mask(self) -> torch.Tensor:
        """(G, in) boolean: which inputs each group still reads."""
        m = self.mask[:, :, 0, 0].view(-1, self.groups, self.in_channels)  # (d_out, G, in)
        return m.amax(0) > 0

    def set_progress(self, progress: float) -> int:
        """Advance to the stage for ``progress`` (never back), dropping channels as needed.

        Returns:
            The number of drop events this call performed.
        """
        target = condensing_stage(progress, self.condense_factor)
        steps = 0
        while int(self.stage) < target:
            self._drop(self.kept_per_group)
            self.stage += 1
            steps += 1
        return steps

    @torch.no_grad()
    def _drop(self, delta: int) -> None:
        weight = (self.conv.weight * self.mask).abs()[:, :, 0, 0]
        weight = weight.view(-1, self.groups, self.in_channels)  # (d_out, G, in)
        scores = weight.sum(0)  # (G, in): L1 over each group's filters
        alive = self.group_mask()
        for g in range(self.groups):
            s = torch.where(alive[g], scores[g], torch.full_like(scores[g], float("inf")))
            drop = torch.sort(s, stable=True).indices[:delta]
            self.mask[g::self.groups, drop] = 0

    def lasso_loss(self) -> torch.Tensor:
        """Group-lasso term: sum over (group, input) of the L2 norm of that group's weights.

        Zero once the optimisation stage is reached, as in the reference implementation.
        """
        if int(self.stage) >= self.condense_factor - 1:
            return self.conv.weight.new_zeros(())
        w = (self.conv.weight * self.mask)[:, :, 0, 0].pow(2)
        w = w.view(-1, self.groups, self.in_channels).sum(0)
        return w.clamp(min=1e-6).sqrt().sum()

    @torch.no_grad()
    def condense(self, strict: bool = True) -> "CondensedGroupConv":
        """The equivalent index + group conv.

        Args:
            strict: require the final stage (each group reading exactly in/C inputs).
                ``strict=False`` only builds the structure (used to load condensed weights).
        """
        alive = self.group_mask()
        k = self.kept_per_group
        if strict and not bool((alive.sum(1) == k).all()):
            raise EdgecnError(
                "this model has not finished its condensing stages (a group still reads more than 1/C of its inputs)",
                "condense a checkpoint from the end of training, or train for more epochs")
        index = []
        for g in range(self.groups):
            idx = torch.nonzero(alive[g]).flatten()
            idx = idx[:k] if idx.numel() >= k else torch.arange(k)
            index.append(idx)
        index = torch.cat(index)
        out = CondensedGroupConv(self.in_channels, self.out_channels, self.groups, index)
        out.norm.load_state_dict({
            "weight": self.norm.weight[index], "bias": self.norm.bias[index],
            "running_mean": self.norm.running_mean[index], "running_var": self.norm.running_var[index],
            "num_batches_tracked": self.norm.num_batches_tracked.clone()})
        out.norm.eps, out.norm.momentum = self.norm.eps, self.norm.momentum
        d_out = self.out_channels // self.groups
        w = self.conv.weight * self.mask  # (out, in, 1, 1); group g = rows g::G
        new_w = torch.empty_like(out.conv.weight)
        for g in range(self.groups):
            rows = w[g::self.groups]  # (d_out, in, 1, 1)
            new_w[g * d_out:(g + 1) * d_out] = rows[:, index[g * k:(g + 1) * k]]
        out.conv.weight.copy_(new_w)
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, groups={self.groups}, "
                f"condense_factor={self.condense_factor}")


class CondensedGroupConv(nn.Module):
    """Index layer -> BN -> ReLU -> grouped 1x1 conv -> channel shuffle."""

    def __init__(self, in_channels: int, out_channels: int, groups: int,
                 index: torch.Tensor | None = None, kept_per_group: int | None = None):
        super().__init__()
        if index is None:
            index = torch.zeros(groups * kept_per_group, dtype=torch.long)
        gathered = int(len(index))
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.index = ChannelGather(index, in_channels)
        self.norm = nn.BatchNorm2d(gathered)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(gathered, out_channels, 1, groups=groups, bias=False)
        self.shuffle = ChannelShuffle(groups)

    def forward(self, x):
        return self.shuffle(self.conv(self.relu(self.norm(self.index(x)))))


def _check_divides(in_channels: int, out_channels: int, groups: int, condense_factor: int) -> None:
    fix = "choose G and C that divide the layer's channel counts (growth rates and the stem width should be multiples of them)"
    if groups < 1 or condense_factor < 1:
        raise EdgecnError(f"groups ({groups}) and condense factor ({condense_factor}) must be at least 1", fix)
    if in_channels % groups or out_channels % groups:
        raise EdgecnError(
            f"G={groups} does not divide a learned group conv with {in_channels} inputs and {out_channels} outputs", fix)
    if in_channels % condense_factor:
        raise EdgecnError(f"C={condense_factor} does not divide the {in_channels} inputs of a learned group conv", fix)
