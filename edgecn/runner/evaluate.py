"""Logits of an artifact: the one way edgecn feeds an artifact and reads its answer. Torch-free.

The build's validation, ``edgecn profile --accuracy`` and the benchmark all score through
``Predictor``, so the top-1 in a manifest and the top-1 on a device come from the same code:
the image is normalised (by the caller or by ``inputs.prepare``), laid out and quantized as
the artifact's input spec says, run in the artifact's own runtime, and its output is
dequantized as the output spec says.
"""

from __future__ import annotations

import os

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.metrics import top1
from edgecn.runner import signature
from edgecn.runner.base import Runner, TensorInfo, open_runner
from edgecn.runner.manifest import TensorSpec


def to_feed(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """One normalised image batch in NCHW float -> the artifact's layout and dtype (quantized if int)."""
    if spec.layout == "NHWC" and x.ndim == 4:
        x = x.transpose(0, 2, 3, 1)
    return quantize(np.ascontiguousarray(x.reshape(spec.shape)), spec.dtype, spec.quant)


def quantize(x: np.ndarray, dtype: str, quant: dict | None) -> np.ndarray:
    """``x`` in ``dtype``; affine (scale, zero point) when ``dtype`` is an integer type."""
    dt = np.dtype(dtype)
    if dt.kind not in "iu":
        return x.astype(dt)
    q = quant or {"scale": 1.0, "zero_point": 0}
    info = np.iinfo(dt)
    return np.clip(np.round(x / q["scale"]) + q["zero_point"], info.min, info.max).astype(dt)


def to_logits(y: np.ndarray, quant: dict | None) -> np.ndarray:
    """An output tensor as float32 logits (dequantized when the output is quantized)."""
    y = np.asarray(y)
    if quant and np.dtype(y.dtype).kind in "iu":
        return (y.astype(np.float32) - quant["zero_point"]) * np.float32(quant["scale"])
    return y.astype(np.float32)


def output_quant(runner: Runner, spec: TensorSpec | None) -> dict | None:
    """The output's quantization: the artifact's spec, else what the runtime reports."""
    if spec is not None and spec.quant is not None:
        return spec.quant
    return runner.outputs[0].quant if runner.outputs else None


class Predictor:
    """An artifact loaded once; ``predictor(x)`` maps normalised NCHW images to float logits.

    Args:
        path: the artifact.
        input: its input spec (layout, dtype, quantization); the build writes it into the
            manifest. Without it, the runtime's own description is used, which cannot say
            how the model was normalised: pass normalised images.
        output: its output spec (for the quantization of the logits).
        threads: the runtime's intra-op threads (None: its default).
    """

    def __init__(self, path: str | os.PathLike, input: TensorSpec | None = None, output: TensorSpec | None = None,
                 threads: int | None = None):
        self.runner = open_runner(path, threads=threads)
        self._in, self._out = input, output

    def __enter__(self) -> "Predictor":
        self.runner.activate()
        where = f"artifact {str(self.runner.path)!r}"
        try:
            if self._in is None:
                info: TensorInfo = signature.image_input(self.runner, where)
                self._in = TensorSpec(info.name, info.shape, info.dtype, "NCHW", info.quant)
            else:
                signature.agree(self.runner, self._in, self._out, None, where, images=False)
        except EdgecnError:
            self.runner.deactivate()
            raise
        self._quant = output_quant(self.runner, self._out)
        return self

    def __exit__(self, *exc) -> None:
        self.runner.deactivate()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.runner.active:
            raise EdgecnError("Predictor used outside `with`", "use `with Predictor(path, spec) as p: p(x)`")
        x = np.asarray(x, dtype=np.float32)
        rows = [to_logits(self.runner.infer(to_feed(x[i:i + 1], self._in)), self._quant).reshape(1, -1)
                for i in range(len(x))]
        return np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)


def predict(path: str | os.PathLike, x: np.ndarray, input: TensorSpec | None = None,
            output: TensorSpec | None = None, threads: int | None = None) -> np.ndarray:
    """Float logits of the artifact at ``path`` for the normalised NCHW images ``x``."""
    with Predictor(path, input, output, threads) as p:
        return p(x)


def learned_nothing(logits: np.ndarray, labels, class_names: list[str]) -> list[str]:
    """Why a model's answers are useless, if they are: top-1 at chance, or one answer for every input.

    Chance is 1/classes; "at chance" is within two binomial standard deviations of it on this
    many images, so a small held-out set does not hide it (nor raise it by luck).
    """
    labels = np.asarray(labels)
    classes, n = len(class_names), len(labels)
    if n == 0 or classes < 2:
        return []
    acc, chance = top1(logits, labels), 100.0 / classes  # percent
    out = []
    if acc <= chance + 2 * (chance * (100.0 - chance) / n) ** 0.5:
        out.append(f"top-1 {acc:.2f}% is at chance level ({chance:.2f}% for {classes} classes): "
                   "the model learned nothing; try a lower --lr, more --epochs, or check the labels")
    answers = np.unique(np.argmax(logits, axis=1))
    if len(answers) == 1:
        out.append(f"the model answers class {class_names[int(answers[0])]!r} for every image")
    return out

