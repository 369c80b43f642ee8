"""Activation ranges from calibration samples: min-max, percentile and entropy (KL).

Plain numpy, shared by every int8 recipe that computes its own ranges. Each method maps
observed values to a clipping range ``(lo, hi)``; the quantizer turns it into scale and
zero point.
"""

from __future__ import annotations

import numpy as np

from edgecn.errors import EdgecnError

METHODS = ("minmax", "percentile", "entropy")
"""Calibration methods every int8 backend understands."""


def check_method(method: str) -> str:
    """``method`` if known; EdgecnError naming the choices otherwise."""
    if method not in METHODS:
        raise EdgecnError(f"unknown calibration method {method!r}", f"use one of {', '.join(METHODS)}")
    return method


def activation_range(samples: np.ndarray, lo: float, hi: float, method: str,
                     percentile: float = 99.99) -> tuple[float, float]:
    """The clipping range for one activation tensor.

    Args:
        samples: values seen during calibration (a subsample is fine).
        lo: exact minimum seen (min-max keeps it).
        hi: exact maximum seen.
        method: one of ``METHODS``.
        percentile: for ``percentile``: the share of values (in %) kept inside the range.

    Returns:
        ``(lo, hi)`` with ``lo <= 0 <= hi`` (int8 must represent zero exactly).
    """
    check_method(method)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    samples = np.asarray(samples, dtype=np.float64).ravel()
    if method == "minmax" or samples.size == 0:
        return lo, hi
    if method == "percentile":
        tail = (100.0 - percentile) / 2.0
        q_lo, q_hi = np.percentile(samples, [tail, 100.0 - tail])
        return max(lo, min(float(q_lo), 0.0)), min(hi, max(float(q_hi), 0.0))
    # Exact zeros (ReLU outputs, padding) are representable at any scale; left in, their
    # spike dominates the histogram and KL picks a uselessly small threshold.
    t = entropy_threshold(np.abs(samples[samples != 0]))
    return max(lo, -t), min(hi, t)


def entropy_threshold(abs_values: np.ndarray, bins: int = 2048, levels: int = 128,
                      stride: int = 16) -> float:
    """TensorRT-style KL calibration: the |x| threshold whose int8 histogram loses least.

    Candidate thresholds are every ``stride``-th bin edge from ``levels`` bins up (a coarse
    search keeps calibration of a whole network to seconds).
    """
    top = float(abs_values.max()) if abs_values.size else 0.0
    if top <= 0.0:
        return 0.0
    hist, edges = np.histogram(abs_values, bins=bins, range=(0.0, top))
    hist = hist.astype(np.float64)
    best, best_i = np.inf, bins
    for i in range(levels, bins + 1, stride):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()  # outliers are clipped into the last bin
        q = _expand(_merge(hist[:i], levels), hist[:i] > 0)
        kl = _kl(p, q)
        if kl < best:
            best, best_i = kl, i
    return float(edges[best_i])


def _merge(p: np.ndarray, levels: int) -> np.ndarray:
    chunks = np.array_split(p, levels)
    return np.array([c.sum() for c in chunks]), [len(c) for c in chunks]


def _expand(merged, nonzero: np.ndarray) -> np.ndarray:
    sums, sizes = merged
    out = np.zeros(nonzero.size)
    start = 0
    for s, n in zip(sums, sizes):
        mask = nonzero[start:start + n]
        k = mask.sum()
        if k:
            out[start:start + n][mask] = s / k
        start += n
    return out


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    p = p / max(p.sum(), 1e-12)
    q = q / max(q.sum(), 1e-12)
    m = p > 0
    if np.any(q[m] == 0):
        return np.inf
    return float(np.sum(p[m] * np.log(p[m] / q[m])))
