"""Magnitude pruning to a per-layer target sparsity, in prune/retrain rounds (Deep Compression stage 1).

Each round ramps the target up (``sparsity * r / rounds``), zeroes the smallest-magnitude
surviving weights of every layer, and retrains with the masks fixed: gradients of pruned
weights are zeroed and the mask is re-applied after every step, so momentum or weight
decay cannot revive them. Masks only ever shrink.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecn.compress.finetune import train_epochs


def compressible_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module name -> every ``Conv2d`` / ``Linear`` of ``model``, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def magnitude_mask(weight: torch.Tensor, sparsity: float, keep: torch.Tensor | None = None) -> torch.Tensor:
    """A bool mask keeping the largest-magnitude ``1 - sparsity`` of ``weight`` (exact count).

    Args:
        weight: the weights.
        sparsity: fraction to prune, in [0, 1); ``round(sparsity * numel)`` weights go.
        keep: the current mask; already-pruned weights are pruned first, so masks shrink.
    """
    n = weight.numel()
    n_prune = int(round(sparsity * n))
    score = weight.detach().abs().reshape(-1).clone()
    if keep is not None:
        score[~keep.reshape(-1)] = -1.0
    mask = torch.ones(n, dtype=torch.bool)
    if n_prune > 0:
        # topk over -score picks exactly n_prune entries even when magnitudes tie.
        mask[torch.topk(-score, n_prune, sorted=False).indices] = False
    if keep is not None:
        mask &= keep.reshape(-1)
    return mask.reshape(weight.shape)


class Masks:
    """Fixed pruning masks for named layers: apply them, mask gradients, report sparsity."""

    def __init__(self, layers: dict[str, nn.Module], keep: dict[str, torch.Tensor] | None = None):
        self.layers = layers
        keep = keep or {}
        self.masks = {name: keep[name].clone() if name in keep else torch.ones_like(m.weight, dtype=torch.bool)
                      for name, m in layers.items()}

    def prune_to(self, targets: dict[str, float]) -> None:
        """Shrink every mask to its layer's target sparsity and zero the pruned weights."""
        for name, sparsity in targets.items():
            self.masks[name] = magnitude_mask(self.layers[name].weight, sparsity, self.masks[name])
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        # masked_fill writes +0.0; multiplying by the mask would leave -0.0 behind negative weights.
        for name, m in self.layers.items():
            m.weight.masked_fill_(~self.masks[name], 0.0)

    def mask_grads(self) -> None:
        for name, m in self.layers.items():
            if m.weight.grad is not None:
                m.weight.grad.mul_(self.masks[name])

    def sparsity(self) -> dict[str, float]:
        return {name: 1.0 - float(mask.float().mean()) for name, mask in self.masks.items()}


def prune(model: nn.Module, train_data, targets: dict[str, float], *, rounds: int, epochs: int,
          lr: float, momentum: float, weight_decay: float, batch_size: int, optimizer: str = "sgd", seed: int = 0,
          keep: dict[str, torch.Tensor] | None = None, progress: bool = False) -> dict[str, float]:
    """Prune ``model`` in place to ``targets`` (layer name -> sparsity) in ``rounds`` rounds.

    Args:
        keep: layer name -> initial mask (e.g. without unreachable taps), pruned at once;
            the rounds then ramp each layer from there to its target.

    Returns:
        The reached sparsity per layer (exactly ``round(target * numel) / numel``).
    """
    layers = compressible_layers(model)
    masks = Masks({name: layers[name] for name in targets}, keep)
    start = masks.sparsity()
    masks.apply()
    if all(s <= start[name] for name, s in targets.items()):
        return start  # only the given masks: nothing was pruned that retraining could make up for
    for r in range(1, rounds + 1):
        masks.prune_to({name: max(start[name], start[name] + (s - start[name]) * r / rounds)
                        for name, s in targets.items()})
        train_epochs(model, train_data, epochs, model.parameters(), lr=lr, momentum=momentum,
                     weight_decay=weight_decay, batch_size=batch_size, optimizer=optimizer, seed=seed + r,
                     after_backward=masks.mask_grads, after_step=masks.apply, progress=progress,
                     desc=f"prune round {r}/{rounds}")
    return masks.sparsity()
