"""Parameter and multiply-add counts, measured by running the model once."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def count(model: nn.Module, input_size: int, in_channels: int = 3) -> dict:
    """Parameters and multiply-adds of ``model`` for one ``in_channels x input_size^2`` image.

    Multiply-adds count convolutions and linear layers (what papers report); masked
    weights of a training-form model count as dense, since the dense op runs.

    Returns:
        ``{"params": int, "macs": int}``
    """
    macs = 0

    def conv_hook(m, inp, out):
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1]
        macs += out.numel() // out.shape[0] * (m.in_channels // m.groups) * k

    def linear_hook(m, inp, out):
        nonlocal macs
        macs += out.numel() // out.shape[0] * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    # LearnedGroupConv calls F.conv2d on its own weight: count it explicitly.
    for m in model.modules():
        if hasattr(m, "mask") and isinstance(getattr(m, "conv", None), nn.Conv2d) and hasattr(m, "condense"):
            hooks.append(m.register_forward_hook(
                lambda mod, i, o: conv_hook(mod.conv, i, o)))
        if hasattr(m, "mask") and isinstance(getattr(m, "linear", None), nn.Linear) and hasattr(m, "condense"):
            hooks.append(m.register_forward_hook(lambda mod, i, o: linear_hook(mod.linear, i, o)))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, in_channels, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return {"params": int(params), "macs": int(macs)}
