"""Artifacts that verify but are odd, and manifests that disagree with their artifact: generated cases.

Two generators:

- ONNX models with any signature (0-3 inputs of rank 1-5, float/int/bool, fixed or dynamic
  dimensions; 0-2 outputs), each carrying the spec of an image classifier. Timing them
  (``profile_artifact`` with random inputs) either measures or raises one EdgecnError;
  classifying an image with them raises unless the model really has that one image input.
- Edits of one field of a real build's manifest (input shape, layout, dtype, quantization,
  normalisation, labels, output). Classifying then either raises one EdgecnError or runs
  with a spec that still describes the file's tensors.

Both run in this process with the real runtimes (onnxruntime, LiteRT): the check is the
runner's, the same for every format.
"""

from __future__ import annotations

import copy
import json
import math
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecn.errors import EdgecnError
from edgecn.runner.classify import Classifier
from edgecn.runner.measure import Plan
from edgecn.runner.profile import Options, profile_artifact
from tests.robustness.robust_helpers import COUNTS

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

DTYPES = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64, "int32": TensorProto.INT32,
          "uint8": TensorProto.UINT8, "bool": TensorProto.BOOL}
IMAGE_SPEC = {"format": "edgecn-artifact-spec", "version": 1, "model": {"name": "tiny", "num_classes": 10, "input_size": 8},
              "labels": [str(i) for i in range(10)], "backend": "onnx", "precision": "fp32",
              "input": {"name": "x", "shape": [1, 1, 8, 8], "layout": "NCHW", "dtype": "float32", "quant": None,
                        "normalize": {"mean": [0.5], "std": [0.5]}},
              "output": {"name": "y", "shape": [1, 10], "dtype": "float32", "quant": None}}
QUICK = Options(plan=Plan(runs=3, min_seconds=0.0, warmup=1, warmup_seconds=0.0))

INPUT = st.tuples(st.sampled_from(sorted(DTYPES)),
                  st.lists(st.one_of(st.integers(1, 10), st.sampled_from(["batch", "n"])), min_size=1, max_size=5))


def onnx_model(inputs, outputs: int) -> bytes:
    """A graph with these inputs; each output sums the first input over all axes (or is a constant)."""
    ins = [helper.make_tensor_value_info(f"in{i}", DTYPES[dt], dims) for i, (dt, dims) in enumerate(inputs)]
    nodes, outs = [], []
    for k in range(outputs):
        if inputs and inputs[0][0] == "float32":
            nodes.append(helper.make_node("ReduceSum", ["in0"], [f"out{k}"], keepdims=0))
        else:
            nodes.append(helper.make_node("Constant", [], [f"out{k}"],
                                          value=helper.make_tensor(f"c{k}", TensorProto.FLOAT, [1, 10], [0.1] * 10)))
        outs.append(helper.make_tensor_value_info(f"out{k}", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "odd", ins, outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="edgecn_spec", value=json.dumps(IMAGE_SPEC))
    return model.SerializeToString()


def _one_line(e: EdgecnError) -> None:
    assert "\n" not in e.message and e.message.strip(), e.message


def test_generated_signatures_are_timed_or_refused(tmp_path):
    image = np.random.default_rng(0).random((8, 8), dtype=np.float32)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(inputs=st.lists(INPUT, max_size=3), outputs=st.integers(0, 2))
    def one(inputs, outputs):
        COUNTS["odd_artifacts"] += 1
        path = tmp_path / "odd.onnx"
        path.write_bytes(onnx_model(inputs, outputs))
        try:
            result = profile_artifact(path, QUICK)
            assert outputs > 0, "an artifact with no outputs was timed"
            assert len(result["input"]["tensors"]) == len(inputs) and result["runs"] >= 3
        except EdgecnError as e:
            _one_line(e)
        is_image = len(inputs) == 1 and inputs[0] == ("float32", [1, 1, 8, 8]) and outputs >= 1
        try:
            with Classifier(path) as model:
                model.predict(image)
            assert is_image, f"an artifact with inputs {inputs} was fed an image"
        except EdgecnError as e:
            _one_line(e)
            assert not is_image or "ReduceSum" in e.message or "output" in e.message, e.message

    one()


EDITS = st.sampled_from(["input.shape", "input.layout", "input.dtype", "input.quant", "input.normalize",
                         "labels", "output.shape", "output.dtype", "output.quant"])


def _edit(manifest: dict, name: str, field: str, draw) -> bool:
    """Apply one edit to ``name``'s entry; True when the spec no longer describes the file."""
    entry = next(a for a in manifest["artifacts"] if a["path"] == name)
    part, _, key = field.partition(".")
    if part == "labels":
        n = draw(st.integers(1, 20))
        manifest["labels"] = [str(i) for i in range(n)]
        return n != 10
    spec = entry[part]
    if key == "shape":
        new = draw(st.lists(st.integers(1, 16), min_size=1, max_size=5))
        changed, spec["shape"] = new != spec["shape"], new
        return changed
    if key == "layout":
        spec["layout"] = draw(st.sampled_from(["NCHW", "NHWC", "NC"]))
        return spec["layout"] == "NC" or (part == "input" and spec["layout"] == "NHWC")
    if key == "dtype":
        new = draw(st.sampled_from(["float32", "float16", "int8", "uint8", "int32"]))
        changed, spec["dtype"] = new != spec["dtype"], new
        return changed
    if key == "quant":
        spec["quant"] = draw(st.sampled_from([None, {"scale": 0.05, "zero_point": 3}]))
        return False  # a float tensor ignores a quantization; an int one needs one (checked by dtype edits)
    channels = draw(st.integers(1, 4))
    spec["normalize"] = {"mean": [0.4] * channels, "std": [0.3] * channels}
    return channels != 1


def test_generated_manifest_edits_are_refused_or_still_describe_the_file(artifacts, tmp_path):
    source = json.loads((artifacts / "manifest.json").read_text())
    image = np.random.default_rng(1).random((8, 8), dtype=np.float32)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(name=st.sampled_from(["model.tflite", "model.onnx"]), field=EDITS, data=st.data())
    def one(name, field, data):
        COUNTS["manifest_edits"] += 1
        folder = tmp_path / "b"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        shutil.copy(artifacts / name, folder / name)
        manifest = copy.deepcopy(source)
        wrong = _edit(manifest, name, field, data.draw)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        try:
            with Classifier(folder / name) as model:
                p = model.predict(image)
        except EdgecnError as e:
            _one_line(e)
            return
        assert not wrong, f"{field} edited to disagree with {name}, and it still ran"
        assert len(p.probabilities) == 10 and math.isclose(float(np.sum(p.probabilities)), 1.0, rel_tol=1e-4)

    one()
