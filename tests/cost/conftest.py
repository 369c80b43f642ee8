"""Models for the cost-table tests."""

import pytest
import torch
from torch import nn


class Branchy(nn.Module):
    """stem -> (a, b) -> cat -> grouped conv -> pool -> linear: one join, two layers with groups."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.a = nn.Conv2d(16, 16, 3, padding=1, groups=8)
        self.b = nn.Conv2d(16, 16, 1)
        self.mix = nn.Conv2d(32, 32, 3, padding=1, groups=8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.cat([torch.relu(self.a(x)), self.b(x)], 1)
        x = torch.relu(self.mix(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@pytest.fixture
def branchy():
    torch.manual_seed(0)
    return Branchy().eval(), torch.randn(1, 3, 8, 8)


@pytest.fixture(scope="session")
def condensed_light():
    """condensenet-light, condensed after ``set_progress(1.0)``, with its example input."""
    from edgecn.condense import condense_model, set_progress
    from edgecn.models import create_model

    torch.manual_seed(0)
    model = create_model("condensenet-light", 10, 32).eval()
    set_progress(model, 1.0)
    return condense_model(model).eval(), torch.randn(1, 3, 32, 32)
