"""TensorRT ONNX: the static check accepts what edgecn writes and rejects what TensorRT would."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edgecn.backends import BACKENDS, CompileContext, run
from edgecn.metrics import sqnr_db
from edgecn.backends.trt_check import check_onnx
from edgecn.errors import EdgecnError

TRT = BACKENDS.get("tensorrt")


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_lowered_onnx_passes_the_static_check(lowered, precision, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    model, x, calib = lowered
    ctx = CompileContext(tmp_path, "m", TRT.options_type(opset=17), calib, "minmax")
    art = TRT.compile(model, x, precision, ctx)
    TRT.check(art, ctx)
    assert art.extra["opset"] == 17
    assert all(c.startswith(f"trtexec --onnx=m-{precision}.onnx") for c in art.extra["trtexec"].values())
    m = onnx.load(str(art.path))
    onnx.checker.check_model(m, full_check=True)  # the spec, topological order included
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    if precision == "int8":
        assert art.ops["QuantizeLinear"] > 0 and art.ops["DequantizeLinear"] > 0
        for init in m.graph.initializer:
            assert init.data_type != TensorProto.INT32, "biases must stay float"
    with torch.no_grad():
        ref = model(calib[:8]).numpy()
    floor = {"fp32": 60, "fp16": 30, "int8": 20}[precision]
    assert sqnr_db(ref, run(art, calib[:8].numpy())) > floor


def test_unlowered_int8_onnx_keeps_gather_off_the_int8_path(condensed, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    model, x, calib = condensed
    ctx = CompileContext(tmp_path, "m", TRT.options_type(), calib, "minmax")
    art = TRT.compile(model, x, "int8", ctx)
    assert art.ops.get("Gather", 0) > 0
    assert check_onnx(onnx.load(str(art.path))) == []


def _qdq_conv(zero_point=0, axis=0, bias_int32=False, opset=17, gather_after_dq=False):
    """A hand-written Q/DQ conv graph with one chosen defect."""
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8), "w_q")
    ws = numpy_helper.from_array(np.full(4, 0.1, np.float32), "w_scale")
    wz = numpy_helper.from_array(np.zeros(4, np.int8), "w_zp")
    xs = numpy_helper.from_array(np.array(0.05, np.float32), "x_scale")
    xz = numpy_helper.from_array(np.array(zero_point, np.int8), "x_zp")
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["wd"], name="dq_w", axis=axis)]
    inits, conv_in = [w, ws, wz, xs, xz], ["xd", "wd"]
    if bias_int32:
        inits += [numpy_helper.from_array(np.zeros(4, np.int32), "b_q"),
                  numpy_helper.from_array(np.full(4, 0.005, np.float32), "b_scale"),
                  numpy_helper.from_array(np.zeros(4, np.int32), "b_zp")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zp"], ["bd"], name="dq_b", axis=0))
        conv_in.append("bd")
    if gather_after_dq:
        inits.append(numpy_helper.from_array(np.array([2, 0, 1], np.int64), "idx"))
        nodes.append(helper.make_node("Gather", ["xd", "idx"], ["xg"], name="gather", axis=1))
        conv_in[0] = "xg"
    nodes.append(helper.make_node("Conv", conv_in, ["y"], name="conv"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_static_check_accepts_a_clean_qdq_conv():
    assert check_onnx(_qdq_conv()) == []


@pytest.mark.parametrize("defect,message", [
    ({"zero_point": 3}, "zero point is not 0"),
    ({"axis": 1}, "axis 1"),
    ({"bias_int32": True}, "quantized (int32) bias"),
    ({"opset": 21}, "opset 21 is outside"),
    ({"gather_after_dq": True}, "Gather reads an int8"),
])
def test_static_check_rejects_what_tensorrt_rejects(defect, message):
    problems = check_onnx(_qdq_conv(**defect))
    assert any(message in p for p in problems), problems


def test_static_check_rejects_unsupported_ops():
    graph = helper.make_graph([helper.make_node("NonMaxSuppression", ["b", "s"], ["y"], name="nms")], "g",
                              [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 1, 4]),
                               helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 3])])
    assert any("NonMaxSuppression" in p for p in check_onnx(helper.make_model(graph)))


def test_backend_check_raises_with_a_fix(tmp_path):
    from edgecn.backends import Artifact

    path = tmp_path / "bad.onnx"
    onnx.save(_qdq_conv(zero_point=5), str(path))
    art = Artifact(path, "tensorrt", "int8", {}, {})
    with pytest.raises(EdgecnError, match="would be rejected by TensorRT") as info:
        TRT.check(art, CompileContext(tmp_path, "bad"))
    assert info.value.fix


def test_engine_command_without_tensorrt(tmp_path):
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed: the engine is built instead")
    except ImportError:
        pass
    from edgecn.backends.tensorrt import engine_or_command

    from edgecn.backends.tensorrt import Options

    info = engine_or_command(tmp_path / "m-int8.onnx", "int8", Options(min_version="8.6", max_version="10.3"))
    assert info["trtexec"] == {"8.x": "trtexec --onnx=m-int8.onnx --saveEngine=m-int8.engine --int8 --fp16",
                               "10.x": "trtexec --onnx=m-int8.onnx --saveEngine=m-int8.engine --stronglyTyped"}
    assert info["engine"] is None
    fp16 = engine_or_command(tmp_path / "m-fp16.onnx", "fp16", Options(min_version="8.2", max_version="8.2"))
    assert fp16["trtexec"] == {"8.x": "trtexec --onnx=m-fp16.onnx --saveEngine=m-fp16.engine --fp16"}


def _grouped_qdq(groups: int, cin: int, cout: int):
    """Input -> Q/DQ -> grouped Conv (weights through DQ) -> output."""
    w = numpy_helper.from_array(np.ones((cout, cin // groups, 3, 3), np.int8), "w")
    inits = [w, numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["w", "s", "z"], ["wd"], name="wdq"),
             helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv", group=groups, pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, 4, 4])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("groups, cin, cout, named", [(8, 16, 8, True), (4, 16, 16, False), (16, 16, 16, False),
                                                      (2, 8, 12, True), (1, 3, 8, False)])
def test_layers_outside_int8_are_named(groups, cin, cout, named):
    from edgecn.backends.trt_check import outside_int8

    found = outside_int8(_grouped_qdq(groups, cin, cout))
    assert bool(found) == named and all("not multiples of 4" in f for f in found)


def test_fp16_graph_is_put_in_topological_order():
    from edgecn.backends.onnx_valid import topological_order

    nodes = [helper.make_node("Relu", ["a"], ["b"], name="r2"), helper.make_node("Neg", ["x"], ["a"], name="n1"),
             helper.make_node("Relu", ["b"], ["y"], name="r3"), helper.make_node("Abs", ["x"], ["c"], name="free")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]),
                           helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(m, full_check=True)
    topological_order(m)
    assert [n.name for n in m.graph.node] == ["n1", "r2", "r3", "free"]
    onnx.checker.check_model(m, full_check=True)
