"""Where pruning is free and where it hurts: unreachable kernel taps and per-layer sensitivity.

Two measurements that decide each layer's target sparsity before the prune/retrain rounds:

* ``unreachable_taps``: at a fixed input size some kernel taps only ever multiply padding.
  SqueezeNet 1.1 at 32x32 runs Fire 6-9 on 1x1 maps, so 8 of the 9 taps of their 3x3
  expands never see an activation. Zeroing them changes no output at that input size (the
  exported graph is static), so they are pruned first, for free.
* ``sensitivity_scan``: prune one layer at a time by magnitude, without retraining, and
  record the accuracy on a slice of the *training* data (the held-out split stays for the
  report). A layer's target is the largest sparsity whose drop stays within a tolerance
  (Han et al. 2015, Fig. 6: conv1 and the classifier are the most sensitive).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecn.compress.finetune import evaluate
from edgecn.compress.pruning import compressible_layers, magnitude_mask
from edgecn.errors import EdgecnError

SCAN_SPARSITIES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _used_offsets(size: int, kernel: int, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """Bool per kernel offset along one axis: does any output position read a real input there?"""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    rows = torch.arange(out)[:, None] * stride - padding + torch.arange(kernel)[None, :] * dilation
    return ((rows >= 0) & (rows < size)).any(0)


@torch.no_grad()
def unreachable_taps(model: nn.Module, input_size: int, in_channels: int = 3) -> dict[str, torch.Tensor]:
    """Per conv layer, a bool mask (weight-shaped) of the taps that only ever see padding.

    Args:
        model: the model; its convs are traced with one ``input_size`` x ``input_size`` input.
        input_size: the side the model is deployed at.
        in_channels: input channels.

    Returns:
        Layer name -> mask, only for layers that have at least one unreachable tap.
    """
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(name, tuple(i[0].shape[-2:])))
             for name, m in compressible_layers(model).items() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    try:
        model.eval()(torch.zeros(1, in_channels, input_size, input_size))
    except RuntimeError as e:
        raise EdgecnError(f"the model cannot run at its input size {input_size}x{input_size} "
                          f"({str(e).splitlines()[0][:120]})",
                          "train it at a larger --input-size (SqueezeNet 1.1 needs at least 32)") from e
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    masks = {}
    for name, m in compressible_layers(model).items():
        if name not in sizes or not isinstance(m.padding, tuple):  # padding="same"/"valid" strings: skip
            continue
        rows, cols = (_used_offsets(sizes[name][a], m.kernel_size[a], m.stride[a], m.padding[a], m.dilation[a])
                      for a in (0, 1))
        dead = ~(rows[:, None] & cols[None, :])
        if dead.any():
            masks[name] = dead.expand_as(m.weight).clone()
    return masks


@torch.no_grad()
def sensitivity_scan(model: nn.Module, data, layers: list[str], sparsities=SCAN_SPARSITIES,
                     keep: dict[str, torch.Tensor] | None = None,
                     floor: float | None = None) -> dict[str, dict[float, float]]:
    """Top-1 (percent) on ``data`` with each layer alone pruned to each sparsity, no retraining.

    Args:
        model: the trained model (restored unchanged afterwards).
        data: dataset of ``(x, y)``; a slice of the training data.
        layers: names of the layers to scan.
        sparsities: the sparsities to try per layer.
        keep: layer name -> mask of the weights still in play (e.g. all but unreachable
            taps); sparsities are fractions of those, pruned on top of the rest.
        floor: stop scanning a layer at the first sparsity whose top-1 falls below this
            (sparsities are scanned in increasing order; larger ones would not be chosen).
    """
    modules = dict(model.named_modules())
    keep = keep or {}
    scan = {}
    for name in layers:
        weight = modules[name].weight
        saved = weight.clone()
        scan[name] = {}
        for s in sorted(sparsities):
            mask = magnitude_mask(weight, overall_sparsity(s, keep.get(name)), keep.get(name))
            weight.masked_fill_(~mask, 0.0)
            scan[name][s] = evaluate(model, data)
            weight.copy_(saved)
            if floor is not None and scan[name][s] < floor:
                break
    return scan


def overall_sparsity(sparsity: float, keep: torch.Tensor | None) -> float:
    """The whole-layer sparsity that prunes ``sparsity`` of the weights ``keep`` still holds."""
    if keep is None:
        return sparsity
    live = float(keep.float().mean())
    return (1.0 - live) + sparsity * live


def choose_sparsity(scan: dict[float, float], reference: float, tolerance: float, cap: float,
                    floor: float = 0.0) -> float:
    """The largest scanned sparsity <= ``cap`` whose top-1 stays within ``tolerance`` points
    of ``reference``, and every smaller one does too; ``floor`` when none qualifies."""
    best = floor
    for s in sorted(scan):
        if s > cap or reference - scan[s] > tolerance:
            break
        best = max(best, s)
    return best
