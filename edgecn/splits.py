"""The fixed train / held-out split of labelled data. Torch-free: the on-device runner uses it too.

Training, the build's validation and ``edgecn profile --accuracy --data digits`` must score the
same held-out images, so the split lives here, in one place.
"""

from __future__ import annotations

import numpy as np

HELDOUT_FRACTION = 0.2
SPLIT_SEED = 0  # fixed forever: the held-out split must never change between runs


def stratified_split(labels: np.ndarray, fraction: float = HELDOUT_FRACTION,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split: ``fraction`` of each class (at least one when possible) held out.

    Returns:
        Sorted index arrays ``(train, heldout)``.
    """
    rng = np.random.default_rng(seed)
    train, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_held = int(round(len(idx) * fraction))
        n_held = min(max(n_held, 1), len(idx) - 1) if len(idx) > 1 else 0
        held.append(idx[:n_held])
        train.append(idx[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))
