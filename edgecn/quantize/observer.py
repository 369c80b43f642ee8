"""A PT2E activation observer whose range comes from ``edgecn.quantize.ranges``.

XNNPACK's and litert-torch's quantizers default to torchao's HistogramObserver; swapping
in this one gives every PT2E backend the same three calibration methods, and lets a
cached range be loaded instead of re-running calibration.
"""

from __future__ import annotations

import numpy as np
import torch
from torchao.quantization.pt2e.observer import MinMaxObserver

from edgecn.quantize.ranges import activation_range

SAMPLES_PER_CALL = 4096
"""Values kept per forward call: a strided subsample bounds memory on big activations."""


class RangeObserver(MinMaxObserver):
    """Min-max observer that also keeps a subsample, and computes its range by ``method``.

    Args:
        method: ``minmax``, ``percentile`` or ``entropy``.
        percentile: share of values kept for ``percentile``.
        **kwargs: passed to MinMaxObserver (dtype, qscheme, quant_min/max, eps).
    """

    def __init__(self, method: str = "minmax", percentile: float = 99.99, **kwargs):
        super().__init__(**kwargs)
        self.method = method
        self.percentile = percentile
        self._samples: list[np.ndarray] = []
        self.fixed_range: tuple[float, float] | None = None

    def forward(self, x_orig):
        if x_orig.numel() == 0 or self.fixed_range is not None:
            return x_orig
        super().forward(x_orig)
        flat = x_orig.detach().reshape(-1)
        step = max(1, flat.numel() // SAMPLES_PER_CALL)
        # A copy, not a view: a strided view's numpy array keeps the whole activation alive,
        # which held every activation of every calibration image (12 GB for CondenseNet-74 at 224).
        self._samples.append(flat[::step].float().cpu().numpy().copy())
        return x_orig

    def observed_range(self) -> tuple[float, float]:
        """``(lo, hi)`` for this tensor: the fixed one if loaded, else computed by method."""
        if self.fixed_range is not None:
            return self.fixed_range
        samples = np.concatenate(self._samples) if self._samples else np.zeros(0)
        return activation_range(samples, float(self.min_val), float(self.max_val), self.method, self.percentile)

    @torch.jit.export
    def calculate_qparams(self):
        lo, hi = self.observed_range()
        return self._calculate_qparams(torch.tensor(lo), torch.tensor(hi))
