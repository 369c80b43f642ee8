"""What the build needs from the passes, checked on real exported graphs of a small CondenseNet."""

from collections import Counter

import pytest
import torch

from edgecn.passes import LoweringConfig, rewrite

CFG = LoweringConfig(index="dense", group_conv="native", shuffle="fold")


@pytest.fixture(scope="module")
def lowered(randomize_bn):
    from edgecn.condense import condense_model, set_progress
    from edgecn.models.condensenet import CondenseNet

    torch.manual_seed(0)
    model = randomize_bn(CondenseNet([2, 1], [8, 8], num_classes=5).eval())
    set_progress(model, 1.0)
    x = torch.randn(1, 3, 16, 16)
    return rewrite(condense_model(model).eval(), CFG, x)[0], x


def test_executorch_graph_is_one_xnnpack_partition(lowered):
    pytest.importorskip("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    model, x = lowered
    edge = to_edge_transform_and_lower(torch.export.export(model, (x,)), partitioner=[XnnpackPartitioner()])
    ops = Counter(str(n.target) for n in edge.exported_program().graph.nodes if n.op == "call_function")
    assert ops.pop("executorch_call_delegate") == 1
    assert set(ops) <= {"<built-in function getitem>"}


def test_tflite_has_no_gather_and_no_inner_transpose(lowered, tmp_path):
    litert_torch = pytest.importorskip("litert_torch")
    from edgecn.runner.tflite import inspect

    model, x = lowered
    path = str(tmp_path / "m.tflite")
    litert_torch.convert(model, (x,)).export(path)
    ops = Counter(inspect(path)["ops"])
    assert not {"GATHER", "GATHER_ND"} & set(ops)
    assert ops["TRANSPOSE"] <= 1  # at most the NCHW -> NHWC input transpose
