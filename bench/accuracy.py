"""Held-out top-1 of every artifact that has trained weights, each in its own runtime."""

from __future__ import annotations

import numpy as np
import torch


def eager_top1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 (%) of the PyTorch model itself."""
    from edgecn.metrics import top1

    with torch.no_grad():
        return top1(model.eval()(x).numpy(), y.numpy())


CHUNK = 16


def artifact_top1(variant, x: np.ndarray, y: np.ndarray, max_seconds: float = 90.0) -> tuple[float, int]:
    """Top-1 (%) of one artifact run by its backend's own runtime (onnxruntime for .onnx).

    Images are scored in order, in chunks; an artifact so slow that all of them would take
    more than ``max_seconds`` (a training form whose convs are not delegated runs about a
    second per image) is scored on the images done by then.

    Returns:
        ``(top-1 %, images scored)``.
    """
    import time

    from edgecn.metrics import top1
    from edgecn.runner.evaluate import Predictor
    from edgecn.runner.manifest import tensor_spec

    meta = variant.meta if variant.backend != "onnxruntime" else {}
    spec_in = tensor_spec(meta["input"]) if meta.get("input") else None
    spec_out = tensor_spec(meta["output"], field="output") if meta.get("output") else None
    start, logits = time.perf_counter(), []
    with Predictor(variant.path, spec_in, spec_out) as predict:
        for i in range(0, len(x), CHUNK):
            logits.append(predict(x[i:i + CHUNK]))
            if time.perf_counter() - start > max_seconds:
                break
    n = sum(len(l) for l in logits)
    return top1(np.concatenate(logits), y[:n]), n
