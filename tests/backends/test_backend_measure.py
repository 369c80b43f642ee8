"""`--lowering auto` times candidates with each backend's ``measure``: it must run the real artifact."""

import torch
from torch import nn

from edgecn.backends import BACKENDS


def test_onnx_backend_measures_a_real_fp32_artifact():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4)).eval()
    seconds = BACKENDS.get("tensorrt").measure(model, torch.randn(1, 3, 16, 16), repeats=5)
    assert 0 < seconds < 1.0
