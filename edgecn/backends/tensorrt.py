"""Explicit-quantization ONNX for TensorRT (Jetson): fp32, fp16 and Q/DQ int8.

The ONNX files are checked statically against TensorRT's parser rules (``trt_check``) and
run in onnxruntime for accuracy. The engine itself is built with TensorRT where the
``tensorrt`` package imports (on the Jetson: engines are tied to the device and the
TensorRT version); elsewhere the manifest records the ``trtexec`` command that builds it.
"""

from __future__ import annotations

import collections
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from edgecn.backends import (Artifact, CompileContext, artifact_path, package_versions, register_backend,
                             time_fp32)
from edgecn.errors import EdgecnError


@dataclasses.dataclass(frozen=True)
class Options:
    """``[tensorrt]`` of a target file.

    Attributes:
        min_version: oldest TensorRT the device may carry (JetPack decides).
        max_version: newest TensorRT the device may carry.
        opset: ONNX opset to export with.
        opset_min: lowest opset the device's ONNX parser reads.
        opset_max: highest opset the device's ONNX parser reads.
    """

    min_version: str = "8.5"
    max_version: str = "10.3"
    opset: int = 17
    opset_min: int = 9
    opset_max: int = 20

    def __post_init__(self):
        for name in ("opset", "opset_min", "opset_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 30:
                raise EdgecnError(f"{name} {value!r} is not an ONNX opset (an integer from 1 to 30)",
                                  "use the opsets the device's TensorRT parser reads, e.g. 9..20 for TensorRT 8.6-10")
        if not self.opset_min <= self.opset <= self.opset_max:
            raise EdgecnError(f"opset {self.opset} is outside opset_min..opset_max "
                              f"({self.opset_min}..{self.opset_max})", "choose an opset inside the parser's range")


def compile(model, example, precision: str, ctx: CompileContext) -> Artifact:
    """Export ``model`` to ``<stem>-<precision>.onnx`` (simplified; Q/DQ for int8)."""
    opts = ctx.options or Options()
    path = artifact_path(ctx, precision, ".onnx")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(model, example, fp32, opts.opset)
        if precision == "int8":
            _int8(model, fp32, path, ctx)
        elif precision == "fp16":
            _fp16(fp32, path)
        else:
            path.write_bytes(fp32.read_bytes())
    art = describe(path, precision, example)
    art.extra.update(engine_or_command(path, precision, opts))
    commands = art.extra.get("trtexec") or {}
    if commands:
        art.device_steps.append("build the engine on the device with "
                                + "; ".join(f"TensorRT {v}: `{c}`" for v, c in commands.items()))
    return art


def _fp16(fp32: Path, path: Path) -> None:
    """fp16 weights and compute with fp32 input and output (casts at the edges), in topological order.

    ``convert_float_to_float16(keep_io_types=True)`` appends its input casts at the end of the
    node list; onnxruntime sorts the graph itself, but the ONNX spec and TensorRT's parser read
    nodes in order, so the graph is put back in order before it is saved.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from edgecn.backends.onnx_valid import topological_order

    model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    topological_order(model)
    onnx.save(model, str(path))


def export_onnx(model, example, path: Path, opset: int) -> None:
    """TorchScript-based export (stable node names, opset chosen freely), then onnxsim."""
    import onnx
    import onnxsim
    import torch

    # The TorchScript exporter names nodes after module paths ("/features/.../Conv"), which
    # is how float layers are picked out for onnxruntime's nodes_to_exclude.
    torch.onnx.export(model.eval(), (example,), str(path), opset_version=opset, dynamo=False,
                      input_names=["input"], output_names=["logits"])
    simplified, ok = onnxsim.simplify(onnx.load(str(path)))
    if not ok:
        raise EdgecnError("onnxsim could not validate the simplified ONNX model", "report this with the model name")
    onnx.save(simplified, str(path))


def _int8(model, fp32: Path, path: Path, ctx: CompileContext) -> None:
    import onnx

    from edgecn.quantize.onnx_qdq import quantize_onnx

    if ctx.calib is None:
        raise EdgecnError("an int8 artifact needs a calibration set", "pass calibration data")
    exclude = nodes_of_layers(onnx.load(str(fp32)), model, ctx.float_layers)
    quantize_onnx(fp32, path, ctx.calib.numpy(), ctx.method, percentile=ctx.percentile,
                  exclude_nodes=exclude, use_cache=ctx.use_cache)


def nodes_of_layers(onnx_model, model, names) -> tuple[str, ...]:
    """ONNX Conv/Gemm node names computing the torch modules ``names``, matched by weight.

    Node names cannot be trusted for this: the exporter names nodes of a rewritten
    (torch.fx) model by the leaf attribute only, so equal leaf names collide.
    """
    from onnx import numpy_helper

    from edgecn.quantize.onnx_qdq import QUANTIZED_OPS

    modules = dict(model.named_modules())
    wanted = [modules[n].weight.detach().cpu().numpy() for n in names if n in modules]
    inits = {t.name: t for t in onnx_model.graph.initializer}
    out = []
    for node in onnx_model.graph.node:
        if node.op_type not in QUANTIZED_OPS or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if any(_same(w, t) for t in wanted):
            out.append(node.name)
    return tuple(out)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return (a.shape == b.shape and np.array_equal(a, b)) or (a.ndim == 2 and a.T.shape == b.shape and np.array_equal(a.T, b))


def describe(path: Path, precision: str, example) -> Artifact:
    import onnx

    model = onnx.load(str(path))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    out_shape = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    return Artifact(Path(path), "tensorrt", precision,
                    input={"name": model.graph.input[0].name, "shape": list(example.shape), "layout": "NCHW",
                           "dtype": "float32", "quant": None},
                    output={"name": model.graph.output[0].name, "shape": out_shape, "dtype": "float32", "quant": None},
                    ops=dict(sorted(ops.items())), extra={"opset": _opset(model)})


def _opset(model) -> int:
    return next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))


def trtexec_commands(path: Path, precision: str, opts: Options) -> dict[str, str]:
    """The ``trtexec`` command per TensorRT major version the target spans.

    TensorRT 8.x (JetPack 4-6.0) is weakly typed: ``--int8`` turns on the explicit quantization the Q/DQ nodes
    describe, ``--fp16`` lets the layers left in float (and the fp16 file) run in half
    precision. TensorRT 10.x (JetPack 6.1+) takes the precision of every tensor from the ONNX file with
    ``--stronglyTyped`` (Q/DQ int8, fp16 weights in the fp16 file); the weak-typing flags are
    deprecated there and refused together with it.
    """
    base = f"trtexec --onnx={path.name} --saveEngine={path.stem}.engine"
    weak = {"fp32": "", "fp16": " --fp16", "int8": " --int8 --fp16"}[precision]
    out = {}
    for major in range(_major(opts.min_version), _major(opts.max_version) + 1):
        if major == 9:
            continue  # TensorRT 9 was a data-centre-only release; no JetPack carries it
        if major < 10:
            out[f"{major}.x"] = base + weak
        else:
            out[f"{major}.x"] = base + ("" if precision == "fp32" else " --stronglyTyped")
    return out


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError as e:
        raise EdgecnError(f"[tensorrt]: version {version!r} is not a TensorRT version",
                          "write versions such as \"8.6\" or \"10.3\"") from e


def engine_or_command(path: Path, precision: str, opts: Options | None = None) -> dict:
    """Build the engine where TensorRT imports; otherwise the trtexec commands for the device."""
    commands = trtexec_commands(path, precision, opts or Options())
    try:
        import tensorrt as trt
    except ImportError:
        return {"trtexec": commands, "engine": None,
                "engine_note": "TensorRT is not installed on this host; build the engine on the device with the "
                               "trtexec command for its TensorRT version"}
    engine = path.with_suffix(".engine")
    _build_engine(trt, path, engine, precision)
    return {"trtexec": commands, "engine": engine.name, "tensorrt_version": trt.__version__}


def _build_engine(trt, onnx_path: Path, engine_path: Path, precision: str) -> None:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgecnError(f"TensorRT could not parse {onnx_path.name}: {errors}", "check the target's opset range")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    engine_path.write_bytes(bytes(builder.build_serialized_network(network, config)))


def check(artifact: Artifact, ctx: CompileContext) -> None:
    """The ONNX spec (full checker, strict shape inference), Polygraphy's lint and TensorRT's
    parser rules; raises EdgecnError with what breaks them. Layers TensorRT would run outside
    int8 become notes on the artifact."""
    import onnx

    from edgecn.backends.onnx_valid import lint_problems, spec_problems
    from edgecn.backends.trt_check import check_onnx, outside_int8

    opts = ctx.options or Options()
    problems = spec_problems(artifact.path) or lint_problems(artifact.path)
    if problems:
        raise EdgecnError(f"{artifact.path.name} is not a valid ONNX model: {'; '.join(problems[:3])}",
                          "report this with the model name and the target; TensorRT's parser would reject the file")
    model = onnx.load(str(artifact.path))
    problems = check_onnx(model, (opts.opset_min, opts.opset_max))
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise EdgecnError(f"{artifact.path.name} would be rejected by TensorRT: {'; '.join(problems[:3])}{more}",
                          "build with the lowering rewrites (--lowering auto), or change the target's opset range")
    if artifact.precision == "int8":
        outside = outside_int8(model)
        artifact.extra["outside_int8"] = outside
        if outside:
            artifact.notes.append(f"{len(outside)} layer(s) TensorRT would run outside int8: {'; '.join(outside[:3])}"
                                  + (" ..." if len(outside) > 3 else ""))


def measure(model, example, repeats: int = 20) -> float:
    """Median seconds per fp32 inference in onnxruntime on this host (a stand-in for TensorRT)."""
    return time_fp32(compile, model, example, repeats)


def tools() -> dict[str, str]:
    return package_versions("onnx", "onnxruntime", "onnxsim", "torch", "tensorrt")


@register_backend("tensorrt", suffix=".onnx", precisions=("fp32", "fp16", "int8"))
class TensorRT:
    Options = Options
    compile, measure, tools, check = staticmethod(compile), staticmethod(measure), staticmethod(tools), staticmethod(check)
