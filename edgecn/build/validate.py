"""Accuracy of an artifact in its own runtime against the float model: top-1 and logit SQNR.

The artifact runs through ``edgecn.runner`` (``edgecn.backends.run``), the code that runs it on
the device, and top-1 is ``edgecn.metrics.top1`` (percent), the one definition of it.
"""

from __future__ import annotations

import numpy as np

from edgecn.backends import Artifact, run
from edgecn.metrics import sqnr_db, top1

__all__ = ["compare", "top1"]


def compare(artifact: Artifact, x: np.ndarray, y: np.ndarray, float_logits: np.ndarray) -> dict:
    """Run ``artifact`` on the held-out images; top-1 and SQNR of its logits vs float."""
    logits = run(artifact, x)
    sqnr = sqnr_db(float_logits, logits)
    # Identical logits have no noise: infinite SQNR, recorded as null (strict JSON has no Infinity).
    return {"top1": round(top1(logits, y), 3), "sqnr_db": round(sqnr, 2) if np.isfinite(sqnr) else None}
