"""Which layers suffer most from int8: a cheap per-layer ranking used by ``--max-drop``."""

from __future__ import annotations

import torch
from torch import nn


def _fake_quant(x: torch.Tensor, dim: int | None) -> torch.Tensor:
    """Symmetric int8 round trip, per channel along ``dim`` (or per tensor)."""
    if dim is None:
        amax = x.abs().max().clamp(min=1e-12)
    else:
        amax = x.abs().amax(dim=[d for d in range(x.dim()) if d != dim], keepdim=True).clamp(min=1e-12)
    scale = amax / 127.0
    return (x / scale).round().clamp(-128, 127) * scale


@torch.no_grad()
def rank_layers(model: nn.Module, calib: torch.Tensor, batch: int = 32) -> list[str]:
    """Conv and Linear module names, most int8-sensitive first.

    Each layer's output is recomputed with int8-rounded input (per tensor) and weights (per
    channel), and compared with its float output by SQNR; the lowest SQNR ranks first.
    """
    noise: dict[str, list[float]] = {}

    def hook(name):
        def run(mod, inputs, out):
            x = inputs[0]
            w = _fake_quant(mod.weight, 0)
            if isinstance(mod, nn.Conv2d):
                q = mod._conv_forward(_fake_quant(x, None), w, mod.bias)
            else:
                q = nn.functional.linear(_fake_quant(x, None), w, mod.bias)
            err = (out - q).norm() / out.norm().clamp(min=1e-12)
            noise.setdefault(name, []).append(float(err))
        return run

    hooks = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()(calib[:batch])
    finally:
        for h in hooks:
            h.remove()
    return sorted(noise, key=lambda n: -max(noise[n]))
