"""Noticing a run that diverged, within its first steps rather than after its whole schedule.

A classifier that has learned nothing scores the loss of chance, ln(classes); one that
diverged scores far above it (logits that grew to hundreds give losses of 5-15 on 10 classes).
``DivergenceGuard`` watches the cross-entropy of every step (the group-lasso term left out, so
a large ``--group-lasso`` is not mistaken for divergence) and stops the run when

- a loss is not finite (NaN or inf), at once; or
- the median over the last ``window`` steps is above ``factor`` x chance: spikes, such as the
  step after a condensing stage prunes weights, do not trip it; a run that stays there does
  (diverged runs of CondenseNet-74 on digits sat at 5-15 step after step).

The check runs before the weights change, so the weights saved at the last finished epoch
(``last.pt``) are the last good ones. Under torchrun every process sees every process's verdict,
so all stop together.
"""

from __future__ import annotations

import collections
import math
import statistics

from edgecn.errors import EdgecnError

FACTOR = 2.0
"""A windowed median loss above this multiple of chance (ln classes) is a divergence."""


class TrainingDiverged(EdgecnError):
    """Training diverged; ``step`` (1-based, over the whole run) and ``loss`` say where and how far."""

    def __init__(self, what: str, fix: str, step: int, loss: float):
        super().__init__(what, fix)
        self.step = step
        self.loss = loss


class DivergenceGuard:
    """Watches per-step losses of one run.

    Args:
        classes: number of classes (chance loss is ln(classes)).
        steps_per_epoch: optimiser steps per epoch; the window is half an epoch, 3 to 20 steps,
            so a run is judged within its first epoch.
        factor: how many times chance the windowed loss may reach.
    """

    def __init__(self, classes: int, steps_per_epoch: int, factor: float = FACTOR):
        self.chance = math.log(max(classes, 2))
        self.limit = factor * self.chance
        self.window = max(3, min(20, steps_per_epoch // 2))
        self.recent: collections.deque[float] = collections.deque(maxlen=self.window)

    def verdict(self, loss: float) -> tuple[str, float] | None:
        """Record one step's loss; (why to stop, the loss that says so), or None to go on."""
        if not math.isfinite(loss):
            return f"the loss is {loss}", loss
        self.recent.append(loss)
        if len(self.recent) == self.window:
            median = statistics.median(self.recent)
            if median > self.limit:
                return (f"the median loss of the last {self.window} steps is {median:.2f}, "
                        f"{median / self.chance:.1f}x chance (ln {round(math.exp(self.chance))} = {self.chance:.2f})"), median
        return None


def diverged(reason: str, loss: float, config, epoch: int, step: int, steps_per_epoch: int, default_lr: float | None,
             saved_epochs: int) -> TrainingDiverged:
    """The error a diverged run ends with: where, how far, and the change to make."""
    where = f"training diverged at epoch {epoch + 1}, step {step + 1} of {steps_per_epoch}"
    if default_lr is not None and config.lr > default_lr * 1.0001:
        advice = [f"lower the learning rate (--lr {config.lr:g} -> {default_lr:g}, this model's default at batch "
                  f"{config.batch_size})"]
    else:
        advice = [f"lower the learning rate (--lr {config.lr:g} -> {config.lr / 4:g})"]
    if config.warmup_epochs < 1:
        advice.append(f"warm up for longer (--warmup-epochs {config.warmup_epochs:g} -> 1)")
    if config.group_lasso > 1e-3:
        advice.append(f"lower --group-lasso ({config.group_lasso:g})")
    if saved_epochs:
        kept = (f"{config.out_dir}/last.pt still holds epoch {saved_epochs}, the last good weights; start afresh "
                "with the change and --overwrite, or in another --out to keep them")
    else:
        kept = "no epoch finished, so nothing was saved; start afresh with the change and --overwrite"
    return TrainingDiverged(f"{where}: {reason}", ", or ".join(advice) + f". {kept[0].upper()}{kept[1:]}",
                            step=epoch * steps_per_epoch + step + 1, loss=loss)
