"""The one BatchNorm-as-affine helper: exact forms, BNs without affine parameters, and BNs that
have no fixed affine map."""

import pytest
import torch
from torch import nn

from edgecn.errors import EdgecnError
from edgecn.layers.batchnorm import as_depthwise_conv, bn_affine, fold_into_conv


def _bn(c: int, affine: bool) -> nn.BatchNorm2d:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(c, affine=affine).eval()
    bn.running_mean.uniform_(-2, 2)
    bn.running_var.uniform_(0.01, 4)  # realistic, far from the default (0, 1)
    if affine:
        bn.weight.data.uniform_(-2, 2)
        bn.bias.data.uniform_(-1, 1)
    return bn


@pytest.mark.parametrize("affine", [True, False])
def test_every_form_computes_the_bn(affine):
    bn, x = _bn(6, affine), torch.randn(2, 6, 5, 5)
    scale, shift = bn_affine(bn)
    assert scale.dtype == shift.dtype == torch.float64
    with torch.no_grad():
        ref = bn(x)
        torch.testing.assert_close(as_depthwise_conv(bn)(x), ref, rtol=1e-5, atol=1e-5)
        conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=True)
        y = torch.randn(2, 4, 5, 5)
        torch.testing.assert_close(fold_into_conv(conv, bn)(y), bn(conv(y)), rtol=1e-5, atol=1e-5)


def test_a_bn_without_running_statistics_is_a_clear_error():
    bn = nn.BatchNorm2d(4, track_running_stats=False).eval()
    with pytest.raises(EdgecnError, match="without running statistics"):
        as_depthwise_conv(bn)
