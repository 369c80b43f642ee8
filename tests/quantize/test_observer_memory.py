"""The calibration observer keeps a bounded subsample, never the activations themselves.

A strided view's numpy array kept its whole activation alive: calibrating CondenseNet-74-c8 at
224x224 on 128 images held 12 GB. Each kept sample must own its memory and stay small.
"""

import gc
import weakref

import torch

from edgecn.quantize.observer import SAMPLES_PER_CALL, RangeObserver


def test_samples_do_not_keep_the_activation_alive():
    obs = RangeObserver(method="percentile", dtype=torch.int8, quant_min=-128, quant_max=127)
    x = torch.randn(1, 64, 56, 56)
    alive = weakref.ref(x)
    obs(x)
    del x
    gc.collect()
    assert alive() is None, "a kept sample still references the activation"
    (sample,) = obs._samples
    assert sample.base is None and sample.nbytes <= 2 * SAMPLES_PER_CALL * 4
    lo, hi = obs.observed_range()
    assert lo < 0 < hi
