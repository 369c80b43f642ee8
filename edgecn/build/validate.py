"""Accuracy of an artifact in its own runtime against the float model: top-1 and logit SQNR."""

from __future__ import annotations

import numpy as np

from edgecn.backends import sqnr_db


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))


def compare(predict, x: np.ndarray, y: np.ndarray, float_logits: np.ndarray) -> dict:
    """Run ``predict`` on the held-out images; top-1 and SQNR of its logits vs float."""
    logits = predict(x)
    return {"top1": round(top1(logits, y), 3), "sqnr_db": round(sqnr_db(float_logits, logits), 2)}
