"""Held-out top-1 of every artifact that has trained weights, each in its own runtime."""

from __future__ import annotations

import numpy as np
import torch


def eager_top1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 (%) of the PyTorch model itself."""
    from edgecn.build.validate import top1

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

    from edgecn.backends import BACKENDS, Artifact
    from edgecn.build.validate import top1

    if variant.backend == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(variant.path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        predict = lambda batch: np.concatenate([sess.run(None, {name: b[None]})[0] for b in batch])  # noqa: E731
    else:
        meta = variant.meta
        art = Artifact(variant.path, variant.backend, variant.precision, input=meta["input"], output=meta["output"])
        predict = BACKENDS.get(variant.backend).load(art)
    start, logits = time.perf_counter(), []
    for i in range(0, len(x), CHUNK):
        logits.append(predict(x[i:i + CHUNK]))
        if time.perf_counter() - start > max_seconds:
            break
    n = sum(len(l) for l in logits)
    return top1(np.concatenate(logits), y[:n]), n
