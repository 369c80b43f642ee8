"""int8 .tflite with chosen layers kept in float: selective quantization of the fp32 model.

The .tflite converter cannot keep a layer float between int8 neighbours: it folds the
dequantize -> float conv -> quantize that PT2E leaves into an int8 conv again. So when the
build keeps layers in float, the int8 model is made from the fp32 .tflite instead, by
ai-edge-quantizer (a dependency of litert-torch) with its ``no_quantize`` algorithm on those
layers' ops: their inputs are dequantized, they compute in float, their outputs are quantized
for the next op, and the file says so in its tensor types (checked after writing).

The quantizer selects ops by the names of their output tensors, and litert-torch names a tensor
after the leaf module's class and attribute only (every dense layer's 1x1 conv gets the same
name), so a layer is found by value: the op whose output equals the module's output on one
calibration image (or its ReLU, which the converter fuses into the conv).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgecn.errors import EdgecnError

MATCH_TOLERANCE = 1e-3  # max |tflite - torch| / max |torch| of a layer's output in the fp32 .tflite
NO_QUANTIZE = "no_quantize"  # ai-edge-quantizer's algorithm key that leaves an op in float


def int8_with_float_layers(model: torch.nn.Module, example: torch.Tensor, ctx, path: Path,
                           convert: Callable, nhwc: bool) -> list[str]:
    """Write an int8 ``.tflite`` of ``model`` to ``path`` with ``ctx.float_layers`` in float.

    Args:
        model: the eval-mode float model (module names as in ``ctx.float_layers``).
        example: a batch-1 NCHW input.
        ctx: the ``CompileContext`` (calibration images, float layers, out_dir).
        path: where the artifact goes.
        convert: ``convert(model, example) -> litert-torch edge model`` with the backend's I/O layout.
        nhwc: whether that model takes NHWC input.

    Returns:
        Notes for the manifest: how the artifact was quantized.
    """
    from edgecn.quantize.equalize import equalize_concat_channels
    from edgecn.quantize.prepare import explicit_batchnorms

    if ctx.calib is None or len(ctx.calib) == 0:
        raise EdgecnError("an int8 artifact needs a calibration set", "pass calibration data (training data or --calibration-images)")
    # The same float-exact preparation as the PT2E path: BNs as depthwise convs (quantized per
    # channel) and equal channel ranges in every concatenation.
    prepared = explicit_batchnorms(model)
    prepared, _ = equalize_concat_channels(prepared, ctx.calib)
    fp32 = path.with_name(path.stem + ".float-source.tflite")
    try:
        convert(prepared, example).export(str(fp32))
        tensors = layer_tensors(fp32, prepared, ctx.calib[:1], ctx.float_layers, nhwc)
        data = _quantize(fp32, tensors.values(), ctx.calib, nhwc)
    finally:
        fp32.unlink(missing_ok=True)
    path.write_bytes(data)
    still_int8 = [name for name, t in tensors.items() if not op_is_float(path, t)]
    if still_int8:
        path.unlink(missing_ok=True)
        raise EdgecnError(f"ai-edge-quantizer quantized layer(s) asked to stay float ({', '.join(still_int8)})",
                          "raise --max-drop, try another --calibration-method or a larger --calibration-size, "
                          "or build fp32 only with --precision fp32")
    return [f"quantized from the fp32 model by ai-edge-quantizer (min-max ranges over {len(ctx.calib)} "
            f"calibration images) so that {len(tensors)} layer(s) compute in float"]


def layer_tensors(tflite: Path, model: torch.nn.Module, image: torch.Tensor, names, nhwc: bool) -> dict[str, str]:
    """``{module name: output tensor name}`` of the ops computing ``names`` in an fp32 ``.tflite``.

    Found by value on ``image`` (the first op, in execution order, whose output equals the
    module's output or its ReLU); a layer that is not found is an error naming it.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise EdgecnError(f"layer(s) to keep in float not in the model: {', '.join(missing)}",
                          "name modules of the model as given to the backend (the lowered model)")
    outputs: dict[str, np.ndarray] = {}
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o.detach().numpy()))
             for n in names]
    try:
        with torch.no_grad():
            model(image)
    finally:
        for h in hooks:
            h.remove()
    it = Interpreter(model_path=str(tflite), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    x = image.permute(0, 2, 3, 1) if nhwc else image
    it.set_tensor(it.get_input_details()[0]["index"], x.contiguous().numpy())
    it.invoke()
    details = it.get_tensor_details()
    found: dict[str, str] = {}
    for name, ref in outputs.items():
        want = ref.transpose(0, 2, 3, 1) if nhwc and ref.ndim == 4 else ref
        scale = max(float(np.abs(want).max()), 1e-12)
        for op in it._get_ops_details():
            out = op["outputs"][0]
            got = it.get_tensor(out)
            if got.shape != want.shape or got.dtype != np.float32:
                continue
            err = min(np.abs(got - want).max(), np.abs(got - np.maximum(want, 0)).max()) / scale
            if err < MATCH_TOLERANCE:
                found[name] = details[out]["name"]
                break
        else:
            raise EdgecnError(f"layer {name} has no op of its own in the converted .tflite (the converter merged it "
                              "with its neighbours), so it cannot be kept in float", "raise --max-drop, or build fp32 only with --precision fp32")
    return found


def _quantize(fp32: Path, float_tensors, calib: torch.Tensor, nhwc: bool) -> bytes:
    """int8 weights and activations everywhere but the ops writing ``float_tensors``."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.qtyping import TFLOperationName

    q = quantizer.Quantizer(str(fp32))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    # An op's scope is its output tensors' names, each followed by ';'. A later entry wins over
    # the global one for the ops it matches.
    for tensor in float_tensors:
        q.update_quantization_recipe(regex=f"^{re.escape(tensor)};$", operation_name=TFLOperationName.ALL_SUPPORTED,
                                     algorithm_key=NO_QUANTIZE)
    signatures = Interpreter(model_path=str(fp32)).get_signature_list()
    key = next(iter(signatures))
    arg = signatures[key]["inputs"][0]
    images = calib.permute(0, 2, 3, 1) if nhwc else calib
    data = {key: [{arg: images[i:i + 1].contiguous().numpy()} for i in range(len(images))]}
    result = q.calibrate(data, num_threads=max(1, min(16, os.cpu_count() or 1)))
    return bytes(q.quantize(result, enable_progress_report=False).quantized_model)


def op_is_float(tflite: Path, tensor: str) -> bool:
    """Whether the op writing ``tensor`` in ``tflite`` reads float activations and weights."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(tflite), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    details = it.get_tensor_details()
    for op in it._get_ops_details():
        if op["outputs"].size and details[op["outputs"][0]]["name"] == tensor:
            ins = [i for i in op["inputs"][:2] if i >= 0]
            return all(np.dtype(details[i]["dtype"]) == np.float32 for i in ins)
    return False
