"""A small, self-contained SGD loop for retraining between compression stages.

Deliberately independent of ``edgecn.train``: the compression stages need hooks between
``backward`` and ``step`` (masking gradients, pooling them into centroids) and after the
step (re-applying masks or codebooks), and nothing else.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader


def evaluate(model: nn.Module, data, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``data`` (a dataset of ``(x, y)``), in percent."""
    from edgecn import metrics

    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in DataLoader(data, batch_size=batch_size):
            correct += metrics.topk_hits(model(x), y)
            total += int(y.numel())
    model.train(was_training)
    return metrics.percent(correct, total) if total else 0.0


def train_epochs(model: nn.Module, data, epochs: int, params: Iterable[torch.nn.Parameter], *,
                 lr: float, momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 64,
                 optimizer: str = "sgd",
                 seed: int = 0, after_backward: Callable[[], None] | None = None,
                 after_step: Callable[[], None] | None = None, progress: bool = False, desc: str = "") -> float:
    """Run ``epochs`` of SGD with cross-entropy on ``params``; returns the last epoch's mean loss.

    Args:
        model: the model; put in training mode for the loop and back in eval mode after.
        data: a dataset of ``(x, y)`` pairs (``torch.utils.data.TensorDataset`` or alike).
        epochs: passes over ``data``; 0 does nothing.
        params: what the optimizer updates (a fresh one, so no stale momentum carries over).
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"`` (for models trained with Adam,
            which plain SGD can knock out of their minimum).
        after_backward: called after ``backward``, before the step (e.g. mask gradients).
        after_step: called after every step (e.g. re-apply masks or codebooks).
        progress: show a tqdm bar per epoch.
    """
    if epochs <= 0:
        return float("nan")
    params = list(params)
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=len(data) > batch_size,
                        generator=torch.Generator().manual_seed(seed))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    mean = float("nan")
    for epoch in range(epochs):
        total, batches = 0.0, 0
        for x, y in _bar(loader, progress, f"{desc} epoch {epoch + 1}/{epochs}"):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            if after_backward is not None:
                after_backward()
            opt.step()
            if after_step is not None:
                after_step()
            total, batches = total + loss.item(), batches + 1
        sched.step()
        mean = total / max(batches, 1)
    model.eval()
    return mean


def _bar(loader, progress: bool, desc: str):
    if not progress:
        return loader
    from tqdm import tqdm

    return tqdm(loader, desc=desc.strip(), leave=False)
