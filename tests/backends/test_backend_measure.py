"""`--lowering auto` times candidates with each backend's ``measure``: it must run the real
artifact, through the runner, as many times as asked."""

import torch
from torch import nn

from edgecn.backends import BACKENDS
from edgecn.runner import evaluate


def test_onnx_backend_measures_a_real_fp32_artifact(monkeypatch):
    calls = []
    real_call = evaluate.Predictor.__call__

    def counted(self, x):
        calls.append((self.runner.path.suffix, tuple(x.shape)))
        return real_call(self, x)

    monkeypatch.setattr(evaluate.Predictor, "__call__", counted)
    small = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4)).eval()
    seconds = BACKENDS.get("tensorrt").measure(small, torch.randn(1, 3, 16, 16), repeats=5)
    assert calls == [(".onnx", (1, 3, 16, 16))] * 6  # one warm-up, then the 5 timed runs
    # It times the work: ~400x the multiply-adds must not measure as fast (a loose 3x bar).
    big = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), *[m for _ in range(3) for m in (nn.Conv2d(64, 64, 3, padding=1), nn.ReLU())],
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4)).eval()
    assert BACKENDS.get("tensorrt").measure(big, torch.randn(1, 3, 16, 16), repeats=5) > 3 * seconds > 0
