"""Shared test settings: small thread pools (CI has 2 cores) and a fixed seed."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_threads():
    try:
        import torch
    except ImportError:  # the torch-free runner tests run without it
        yield
        return
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


def randomize_bn(model):
    """Give every BN non-trivial statistics (as training leaves them), so a wrong BN move or
    fold, or an int8 range that clips, shows in the outputs."""
    from torch import nn

    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


@pytest.fixture(scope="session", name="randomize_bn")
def _randomize_bn_fixture():
    return randomize_bn
