"""Concat channel equalization: exact, every concatenated channel spans its group's range, and a
channel whose readers cannot absorb a scale is left alone."""

import torch
from torch import nn

from edgecn.quantize.equalize import equalize_concat_channels
from edgecn.quantize.prepare import explicit_batchnorms


def _lowered(randomize_bn):
    from edgecn.condense import condense_model, set_progress
    from edgecn.models import create_model
    from edgecn.passes import LoweringConfig, rewrite
    from edgecn.targets import get_target

    torch.manual_seed(0)
    model = randomize_bn(create_model("condensenet-light", num_classes=10, input_size=16))
    set_progress(model, 1.0)
    model = condense_model(model.eval()).eval()
    x = torch.randn(1, 3, 16, 16)
    lowered, _ = rewrite(model, LoweringConfig.from_dict(get_target("rpi5").lowering, "tflite"), x)
    return explicit_batchnorms(lowered)


def _cat_peaks(gm, x):
    """Per-channel max |value| of every concat output."""
    peaks = []
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target is torch.cat:
            peaks.append(n)
    from torch.fx import Interpreter

    out = {}

    class Grab(Interpreter):
        def run_node(self, n):
            r = super().run_node(n)
            if n in peaks:
                out[n.name] = r.abs().amax(dim=(0, 2, 3))
            return r

    with torch.no_grad():
        Grab(gm).run(x)
    return out


def test_equalized_model_is_exact_and_fills_each_concat(randomize_bn):
    model = _lowered(randomize_bn)
    calib = torch.randn(32, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    eq, scaled = equalize_concat_channels(model, calib)
    assert scaled > 0 and eq is not model
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, got = model(x), eq(x)
    assert float((ref - got).abs().max()) <= 1e-4 * float(ref.abs().max())
    assert [n.op for n in eq.graph.nodes] == [n.op for n in model.graph.nodes], "weights change, the graph does not"
    before, after = _cat_peaks(model, calib), _cat_peaks(eq, calib)
    spread = lambda p: float(p.max() / p[p > 0].min())  # noqa: E731
    assert max(spread(p) for p in after.values()) < min(spread(p) for p in before.values())
    assert all(spread(p) < 1.01 for p in after.values()), "every channel of a concat spans its range"


def test_a_channel_read_by_something_else_is_left_alone():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)
            self.norm = nn.Conv2d(8, 8, 1, groups=8)

        def forward(self, x):
            y = torch.cat([self.a(x), self.b(x)], 1)
            return self.norm(y) + y.mean()  # the mean sees the unscaled channels

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        net.a.weight.mul_(10)
    model, scaled = equalize_concat_channels(net, torch.randn(8, 3, 8, 8))
    assert model is net and scaled == 0
