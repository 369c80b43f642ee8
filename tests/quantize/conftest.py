"""Fixtures for the int8 tests: a small network with dense connectivity."""

import pytest
import torch
from torch import nn


class TinyDense(nn.Module):
    """stem conv feeding both a BN-ReLU-conv branch and a concat (the PT2E BN-fold trap)."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.norm_last = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, classes)
        with torch.no_grad():
            for bn in (self.norm, self.norm_last):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.3, 0.3)
        self.edgecn_config = {"name": "tiny-dense", "num_classes": classes, "input_size": 12}

    def forward(self, x):
        s = self.stem(x)
        y = torch.cat([s, self.conv(torch.relu(self.norm(s)))], 1)
        y = torch.relu(self.norm_last(y)).mean((2, 3))
        return self.fc(y)


@pytest.fixture
def tiny_dense() -> nn.Module:
    torch.manual_seed(0)
    return TinyDense().eval()
