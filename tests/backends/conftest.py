"""A small condensed CondenseNet, lowered by edgecn.passes, shared by the backend tests."""

import pytest
import torch


def _randomize_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model


@pytest.fixture(scope="session")
def condensed():
    """(condensed CondenseNet with 2+1 layers, example input 16x16, calibration set)."""
    from edgecn.condense import condense_model, set_progress
    from edgecn.models.condensenet import CondenseNet

    torch.manual_seed(0)
    model = _randomize_bn(CondenseNet([2, 1], [8, 8], num_classes=5).eval())
    set_progress(model, 1.0)
    model = condense_model(model).eval()
    model.edgecn_config = {"name": "tiny-condensenet", "num_classes": 5, "input_size": 16}
    gen = torch.Generator().manual_seed(3)
    return model, torch.randn(1, 3, 16, 16, generator=gen), torch.randn(24, 3, 16, 16, generator=gen)


@pytest.fixture(scope="session")
def lowered(condensed):
    from edgecn.passes import LoweringConfig, rewrite

    model, x, calib = condensed
    out = rewrite(model, LoweringConfig(index="dense", group_conv="native", shuffle="fold"), x)[0]
    out.edgecn_config = model.edgecn_config
    return out, x, calib
