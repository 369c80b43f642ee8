"""TFLite ``.tflite`` via litert-torch, fp32 and full int8 (PT2E with litert-torch's PT2EQuantizer)."""

from __future__ import annotations

import dataclasses
from pathlib import Path


from edgecn.backends import (Artifact, CompileContext, artifact_path, package_versions, register_backend,
                             time_fp32)
from edgecn.errors import EdgecnError

GATHER_OPS = ("GATHER", "GATHER_ND")


@dataclasses.dataclass(frozen=True)
class Options:
    """``[tflite]`` of a target file.

    Attributes:
        channel_last_io: take NHWC input (what camera pipelines give), so no TRANSPOSE
            runs at the input.
        max_transposes: most TRANSPOSE ops allowed in the artifact (-1: no limit).
        forbid_gather: fail when GATHER/GATHER_ND remain (XNNPACK does not take them).
    """

    channel_last_io: bool = True
    max_transposes: int = -1
    forbid_gather: bool = False


def compile(model, example, precision: str, ctx: CompileContext) -> Artifact:
    """Convert ``model`` to ``<stem>-<precision>.tflite`` in ``ctx.out_dir``.

    int8 goes through PT2E and the converter; an int8 model with layers kept in float
    (``ctx.float_layers``) is quantized from the fp32 .tflite instead (``edgecn.quantize.selective``),
    because the converter folds a float layer between int8 neighbours back into int8.
    """
    opts = ctx.options or Options()
    nhwc = opts.channel_last_io
    path = artifact_path(ctx, precision, ".tflite")
    if precision == "int8" and ctx.float_layers:
        from edgecn.quantize.selective import int8_with_float_layers

        notes = int8_with_float_layers(model.eval(), example, ctx, path, lambda m, x: _convert(m, x, nhwc), nhwc)
        art = describe(path, precision, "NHWC" if nhwc else "NCHW")
        art.notes.extend(notes)
        return art
    graph, kwargs = model.eval(), {}
    if precision == "int8":
        graph, kwargs = _int8(graph, example, ctx)
    _convert(graph, example, nhwc, **kwargs).export(str(path))
    return describe(path, precision, "NHWC" if nhwc else "NCHW")


def _convert(graph, example, nhwc: bool, **kwargs):
    """litert-torch's converted model of ``graph`` (NHWC at the input when ``nhwc``)."""
    import litert_torch

    x = example
    if nhwc:
        # Wrapped after PT2E (around the converted graph): the wrapper's permute then runs
        # before the input quantize, and litert-torch folds it away with the layout pass.
        graph, x = litert_torch.to_channel_last_io(graph, args=[0]), example.permute(0, 2, 3, 1).contiguous()
        graph.training = False  # .eval() would recurse into a converted PT2E graph, which refuses it
    return litert_torch.convert(graph, (x,), **kwargs)


def _int8(graph, x, ctx: CompileContext):
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig

    from edgecn.quantize.concat import share_concat_ranges
    from edgecn.quantize.gather import SharedGathers
    from edgecn.quantize.pt2e import quantize_for_backend

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    # A kept gather shares its input's range: TFLite's int8 GATHER_ND needs one scale on both
    # sides, and the converter writes a requantize (QUANTIZE) after every gather whose output
    # was calibrated on its own (55 in a CondenseNet-74-c8 at 224 calibrated by percentile).
    # The converter forces each CONCATENATION onto one scale by picking an input's, which
    # clips the others; giving each concat (and the gathers sharing its range) the union range
    # first keeps dense nets accurate.
    qm = quantize_for_backend("tflite", graph, x, lambda: SharedGathers(PT2EQuantizer()), config, ctx,
                              fold_quantize=False, edit=share_concat_ranges)
    qm.training = False  # .eval() is not supported on converted PT2E modules
    quantizer = PT2EQuantizer().set_global(config)
    return qm, {"quant_config": QuantConfig(pt2e_quantizer=quantizer)}


def int8_graph(model, example, ctx: CompileContext):
    """The quantized PT2E graph an int8 ``.tflite`` is converted from (quantize ops kept)."""
    return _int8(model.eval(), example, ctx)[0]


def describe(path: Path, precision: str, layout: str) -> Artifact:
    """An Artifact for an existing .tflite: I/O tensors, op histogram, delegation."""
    from edgecn.runner.tflite import inspect

    found = inspect(path)
    inp, out = found["inputs"][0], found["outputs"][0]
    return Artifact(Path(path), "tflite", precision, input={**_tensor(inp), "layout": layout},
                    output=_tensor(out), ops=found["ops"], extra={"xnnpack_partitions": found["xnnpack_partitions"]})


def _tensor(t) -> dict:
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "quant": t.quant}


def check(artifact: Artifact, ctx: CompileContext) -> None:
    """No GATHER/GATHER_ND and at most ``max_transposes`` TRANSPOSEs, when the target asks."""
    opts = ctx.options or Options()
    gathers = {k: v for k, v in artifact.ops.items() if k in GATHER_OPS}
    fix = "pick lowering choices that remove these ops ([lowering] in the target file, or --lowering auto), or relax [tflite] in the target file"
    if opts.forbid_gather and gathers:
        raise EdgecnError(f"{artifact.path.name} still has {gathers} ops, which XNNPACK does not delegate", fix)
    transposes = artifact.ops.get("TRANSPOSE", 0)
    if opts.max_transposes >= 0 and transposes > opts.max_transposes:
        raise EdgecnError(f"{artifact.path.name} has {transposes} TRANSPOSE ops (the target allows {opts.max_transposes})", fix)


def measure(model, example, repeats: int = 20) -> float:
    """Median seconds per fp32 inference of ``model`` as a .tflite on this host (1 thread)."""
    return time_fp32(compile, model, example, repeats)


def tools() -> dict[str, str]:
    return package_versions("litert-torch", "ai-edge-litert", "torch", "torchao")


@register_backend("tflite", suffix=".tflite", precisions=("fp32", "int8"))
class TFLite:
    Options = Options
    compile, measure, tools, check = staticmethod(compile), staticmethod(measure), staticmethod(tools), staticmethod(check)
    int8_graph = staticmethod(int8_graph)
