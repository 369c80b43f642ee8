"""Segments: cut where layers join, one input and one output each, and together exactly the model."""

import torch

from edgecn.cost import segments as seg
from edgecn.lowering import LoweringConfig
from edgecn.passes import rewrite
from edgecn.passes.base import trace
from edgecn.targets import get_target


def _chain(gm, parts, x):
    for p in parts:
        x = seg.micro_model(gm, p)(x)
    return x


def test_cuts_are_where_nothing_earlier_is_read_later(branchy):
    model, x = branchy
    gm = seg.shaped(trace(model), x)
    cuts = seg.cuts(gm)
    # after the stem's ReLU both branches read it, so nothing inside the branches is a cut
    assert cuts[0] == "x" and "relu" in cuts and "cat" in cuts
    assert not any(c.startswith(("a", "b", "relu_1")) for c in cuts)


def test_segments_partition_the_graph_and_run_as_the_whole(branchy):
    model, x = branchy
    gm = seg.shaped(trace(model), x)
    parts = seg.segments(gm)
    compute = [n.name for n in gm.graph.nodes if n.op not in ("placeholder", "output", "get_attr")]
    assert [n for p in parts for n in p.nodes] == compute
    assert all(p.start == q.end for q, p in zip(parts, parts[1:]))
    torch.testing.assert_close(_chain(gm, parts, x), gm(x), rtol=0, atol=0)


def test_a_lowered_condensenet_runs_segment_by_segment(condensed_light):
    model, x = condensed_light
    cfg = LoweringConfig.from_dict(get_target("rpi5").lowering, "tflite")
    gm, _ = rewrite(model, cfg, x)
    seg.shaped(gm, x)
    parts = seg.segments(gm, keep=seg.significant(gm, set(seg.cuts(gm))))
    ends = [p.end for p in parts]
    # one segment per dense layer, ending at its concat or, before a transition, at the transition's pool
    assert sum(any(n.startswith("cat") for n in p.nodes) for p in parts) == 12
    assert sum(e.startswith("cat") for e in ends) == 12 - 1
    for p in parts:  # every segment computes something (lone ReLUs, pools and flattens joined to a neighbour)
        assert seg.describe(gm, p)[1] != "(no compute)"
    y = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(_chain(gm, parts, y), gm(y), rtol=1e-5, atol=1e-5)


def test_describe_keys_by_structure_and_shape_not_weights(branchy):
    model, x = branchy
    gm = seg.shaped(trace(model), x)
    parts = seg.segments(gm)
    keys = [seg.describe(gm, p)[0] for p in parts]
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    gm2 = seg.shaped(trace(model), x)
    assert [seg.describe(gm2, p)[0] for p in seg.segments(gm2)] == keys
    gm3 = seg.shaped(trace(model), torch.randn(1, 3, 16, 16))
    assert [seg.describe(gm3, p)[0] for p in seg.segments(gm3)][1] != keys[1]


def test_a_piece_without_weights_joins_the_segment_before_it():
    # conv | ReLU | max-pool | conv | flatten: alone, a quantizer leaves the pool in float (it takes
    # its input's quantization, and alone its input is float); in the model it runs int8.
    model = torch.nn.Sequential(torch.nn.MaxPool2d(2), torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 8, 1), torch.nn.Flatten()).eval()
    x = torch.randn(1, 3, 16, 16)
    gm = seg.shaped(trace(model), x)
    assert len(seg.segments(gm)) == 6
    parts = seg.segments(gm, keep=seg.significant(gm, set(seg.cuts(gm))))
    assert [[gm.get_submodule(next(n.target for n in gm.graph.nodes if n.name == name)).__class__.__name__
             for name in p.nodes] for p in parts] == [["MaxPool2d", "Conv2d", "ReLU", "MaxPool2d"],
                                                      ["Conv2d", "Flatten"]]
    torch.testing.assert_close(_chain(gm, parts, x), gm(x), rtol=0, atol=0)
