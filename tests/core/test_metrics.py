"""The one definition of top-1/top-5 (percent) and SQNR (dB), on arrays and on torch tensors."""

import math

import numpy as np
import pytest
import torch

from edgecn import metrics
from edgecn.errors import EdgecnError


def test_top1_and_top5_are_percent_and_agree_with_torch():
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(200, 12, generator=gen), torch.randint(0, 12, (200,), generator=gen)
    want1 = 100.0 * float((logits.argmax(1) == labels).float().mean())
    want5 = 100.0 * float((logits.topk(5, 1).indices == labels[:, None]).any(1).float().mean())
    assert metrics.top1(logits, labels) == pytest.approx(want1)
    assert metrics.top1(logits.numpy(), labels.numpy()) == pytest.approx(want1)
    assert metrics.top5(logits, labels) == pytest.approx(want5)
    assert metrics.top5(logits[:, :5], labels.clamp(max=4)) is None  # 5 classes: top-5 says nothing


def test_edges():
    with pytest.raises(EdgecnError, match="no images"):
        metrics.top1(np.zeros((0, 3)), [])
    assert math.isnan(metrics.percent(0, 0))
    assert metrics.sqnr_db([1.0, 2.0], [1.0, 2.0]) == math.inf
    assert metrics.sqnr_db([1.0, 0.0], [1.1, 0.0]) == pytest.approx(20.0)
