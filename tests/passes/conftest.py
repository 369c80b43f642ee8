"""Models and graph queries shared by the rewrite tests."""

from collections import Counter

import pytest
import torch
from torch import nn


@pytest.fixture(scope="session")
def condensed(randomize_bn):
    """condensenet-light, condensed after a random-weight ``set_progress(1.0)``."""
    from edgecn.condense import condense_model, set_progress
    from edgecn.models import create_model

    torch.manual_seed(0)
    model = randomize_bn(create_model("condensenet-light", 10, 32).eval())
    set_progress(model, 1.0)
    return condense_model(model).eval()


@pytest.fixture(scope="session")
def x32():
    return torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _op_counts(model: nn.Module, x: torch.Tensor) -> Counter:
    """call_function targets of ``torch.export``'s graph, by short name (``index_select``)."""
    graph = torch.export.export(model, (x,)).graph
    return Counter(str(n.target).split(".")[1] for n in graph.nodes if n.op == "call_function")


@pytest.fixture(scope="session")
def op_counts():
    return _op_counts


def _assert_same(a: nn.Module, b: nn.Module, shape, trials: int = 3, tol: float = 1e-5):
    """Both models agree to ``tol`` on fresh random inputs (not the example input)."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for _ in range(trials):
            x = torch.randn(*shape, generator=gen) * 2
            ref, out = a(x), b(x)
            assert (ref - out).abs().max().item() <= tol * max(1.0, ref.abs().max().item())


@pytest.fixture(scope="session")
def assert_same():
    return _assert_same


@pytest.fixture(scope="session")
def conv_groups():
    def groups(model, x):
        graph = torch.export.export(model, (x,)).graph
        return sorted(int(n.args[6]) if len(n.args) > 6 else 1 for n in graph.nodes
                      if n.op == "call_function" and "conv2d" in str(n.target))
    return groups
