"""Accuracy and fidelity metrics: one definition each, one unit.

Top-1 and top-5 are in percent everywhere edgecn reports, stores or compares them (training
history and checkpoints, the build's manifest, the runner's JSON, the benchmark); SQNR is in dB.
Torch-free (the runner uses it on the device); a torch tensor on the CPU is taken as an array.
"""

from __future__ import annotations

import numpy as np

from edgecn.errors import EdgecnError


def topk_hits(logits, labels, k: int = 1) -> int:
    """How many rows of ``logits`` have their label among their ``k`` largest values."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if k == 1:
        return int(np.sum(np.argmax(logits, axis=1) == labels))
    top = np.argpartition(-logits, min(k, logits.shape[1]) - 1, axis=1)[:, :k]
    return int(np.sum(np.any(top == labels[:, None], axis=1)))


def percent(hits: float, total: float) -> float:
    """``hits`` of ``total`` in percent (NaN for no images)."""
    return float("nan") if total == 0 else 100.0 * float(hits) / float(total)


def top1(logits, labels) -> float:
    """Top-1 accuracy of ``logits`` (N, classes) against ``labels`` (N,), in percent."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise EdgecnError("top-1 of no images", "score on a data set with at least one image")
    return percent(topk_hits(logits, labels, 1), len(labels))


def top5(logits, labels) -> float | None:
    """Top-5 accuracy in percent; None when there are 5 classes or fewer (it would be 100%)."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] <= 5:
        return None
    return percent(topk_hits(logits, labels, 5), len(labels))


def sqnr_db(ref, got) -> float:
    """Signal-to-quantization-noise ratio ``20*log10(||ref|| / ||ref - got||)`` in dB (inf if equal)."""
    ref = np.asarray(ref, dtype=np.float64)
    noise = np.linalg.norm(ref - np.asarray(got, dtype=np.float64))
    return float("inf") if noise == 0 else float(20.0 * np.log10(np.linalg.norm(ref) / noise))
