"""Explicit int8 ONNX (Q/DQ) for TensorRT with onnxruntime's ``quantize_static``.

Settings are the ones TensorRT's ONNX parser accepts (per onnx-tensorrt's docs): symmetric activations and weights
(zero points 0), per-channel weights on axis 0, per-tensor activations, biases left in
float, Q/DQ only on the inputs of Conv/Gemm/MatMul (onnxruntime's defaults quantize biases to
int32 and BatchNorm parameters, which TensorRT rejects).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from edgecn.quantize.calibration import cache_dir
from edgecn.quantize.ranges import check_method

QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
_ORT_METHOD = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


def quantize_onnx(float_path: str | os.PathLike, out_path: str | os.PathLike, calib: np.ndarray, method: str, *,
                  percentile: float = 99.99, exclude_nodes: tuple[str, ...] = (), use_cache: bool = True) -> Path:
    """Write the Q/DQ int8 version of ``float_path`` to ``out_path``.

    Args:
        float_path: the float ONNX model.
        out_path: where the int8 model goes.
        calib: calibration inputs, float32 NCHW, fed one at a time (batch-1 export).
        method: ``minmax``, ``percentile`` or ``entropy`` (onnxruntime's calibrators).
        percentile: share of values kept by ``percentile``.
        exclude_nodes: ONNX node names kept in float.
        use_cache: reuse a model quantized from the same float bytes, data and settings.
    """
    check_method(method)
    calib = np.ascontiguousarray(calib, dtype=np.float32)
    key = _key(Path(float_path).read_bytes(), calib, method, percentile, sorted(exclude_nodes))
    cached = cache_dir() / f"onnx-{key}.onnx"
    if use_cache and cached.exists():
        shutil.copyfile(cached, out_path)
        return Path(out_path)
    _quantize(float_path, out_path, calib, method, percentile, exclude_nodes)
    if use_cache:
        from edgecn.fileio import atomic_write_bytes

        atomic_write_bytes(cached, Path(out_path).read_bytes())
    return Path(out_path)


def _quantize(float_path, out_path, calib, method, percentile, exclude_nodes) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    name = onnx.load(str(float_path), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {name: x}

    quantize_static(
        str(float_path), str(out_path), Reader(), quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        nodes_to_exclude=list(exclude_nodes),
        calibrate_method=getattr(CalibrationMethod, _ORT_METHOD[method]),
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                       "CalibPercentile": percentile, "CalibTensorRangeSymmetric": True,
                       # Q/DQ only on the inputs of quantized ops: a conv's output often feeds a
                       # Gather (condensed index), which TensorRT cannot run in int8.
                       "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS)})


def _key(model_bytes: bytes, calib: np.ndarray, *parts) -> str:
    h = hashlib.sha256(model_bytes)
    h.update(calib.tobytes())
    h.update(repr(parts).encode())
    return h.hexdigest()
