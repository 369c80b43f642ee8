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
