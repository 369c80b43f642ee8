"""Held-out top-1 of every artifact that has trained weights, each in its own runtime."""

from __future__ import annotations

import numpy as np
import torch


def eager_top1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 (%) of the PyTorch model itself."""
    from edgecn.build.validate import top1

    with torch.no_grad():
        return top1(model.eval()(x).numpy(), y.numpy())


def artifact_top1(variant, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 (%) of one artifact run by its backend's own runtime (onnxruntime for .onnx)."""
    from edgecn.backends import BACKENDS, Artifact
    from edgecn.build.validate import top1

    if variant.backend == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(variant.path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        logits = np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
        return top1(logits, y)
    meta = variant.meta
    art = Artifact(variant.path, variant.backend, variant.precision, input=meta["input"], output=meta["output"])
    return top1(BACKENDS.get(variant.backend).load(art)(x), y)
