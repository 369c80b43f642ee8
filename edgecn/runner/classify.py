"""Classify images with a built artifact: the public, torch-free API for apps and scripts.

    from edgecn.runner import Classifier

    with Classifier("build/condensenet-light-raspberry-pi-5/condensenet-light-int8.tflite") as model:
        result = model.predict("digit.png")          # a file, a PIL image or a numpy array
        print(result.label, result.probability)      # '7' 0.98
        print(result.top(5))                         # [('7', 0.98), ('1', 0.01), ...]

The caller passes an image as it has it, whatever the artifact's format and precision: a
path, a PIL image, or a numpy array laid out HxW or HxWxC (``layout="CHW"`` for CxHxW) with
``uint8`` values 0-255 or float values in [0, 1]. Everything the model needs after that
(resizing to its input size, grey <-> colour, the training normalisation, NCHW or NHWC,
int8 quantization of the input, dequantization of the logits) comes from the spec the build
wrote beside or inside the artifact, so the int8 ``.tflite`` (int8 NHWC input) and the int8
``.pte`` (float NCHW input) of one build are used with the same code and answer alike.

Before anything runs, the artifact is checked as ``edgecn profile`` checks it: its sha256
against ``manifest.json`` in its folder, or, copied alone, the spec it carries. The bytes that
were hashed are the bytes that run (read once; a file replaced afterwards changes nothing).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.runner import signature
from edgecn.runner.base import open_runner
from edgecn.runner.evaluate import output_quant, to_logits
from edgecn.runner.inputs import prepare
from edgecn.runner.manifest import TensorSpec

LAYOUTS = ("HWC", "CHW")
MAX_SIDE = 8192
"""Largest image side accepted from an array (as from a file: see ``images.MAX_PIXELS``)."""


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One image's answer: the model's logits, their softmax and the class names."""

    logits: np.ndarray
    probabilities: np.ndarray
    labels: tuple[str, ...]

    @property
    def index(self) -> int:
        """The most likely class's index."""
        return int(np.argmax(self.probabilities))

    @property
    def label(self) -> str:
        """The most likely class's name."""
        return self.labels[self.index]

    @property
    def probability(self) -> float:
        """The most likely class's probability."""
        return float(self.probabilities[self.index])

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most likely classes as (name, probability), most likely first (ties by index)."""
        order = np.argsort(-self.probabilities, kind="stable")[:max(0, int(k))]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    def to_dict(self, k: int = 5) -> dict:
        """JSON-ready: the answer and the top ``k``."""
        return {"label": self.label, "index": self.index, "probability": self.probability,
                "top": [{"label": name, "probability": p} for name, p in self.top(k)]}


class Classifier:
    """An artifact verified and loaded once; ``predict(image)`` answers one image.

    Args:
        path: a ``.tflite``, ``.pte``, ``.onnx`` or TensorRT engine written by ``edgecn build``
            (in its build folder, or copied alone with the spec it carries).
        threads: the runtime's intra-op threads (None: its default).
        allow_unverified: run an artifact whose sha256 does not match its folder's manifest
            (as ``edgecn profile --force``); refused by default.

    Raises:
        EdgecnError: the file is missing, fails verification, or carries no spec (then the
            normalisation it was trained with is unknown and its answers would be wrong).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, allow_unverified: bool = False):
        from edgecn.runner.profile import read_verified

        self.path = Path(path)
        entry, integrity, content = read_verified(self.path, allow_unverified)
        if entry is None:
            raise EdgecnError(f"{str(self.path)!r} carries no input spec (size, normalisation, layout, quantization), "
                              "so its answers to an image would be wrong",
                              "use it in its build folder (beside manifest.json), or rebuild it with this edgecn "
                              "(which writes the spec into or beside the artifact)")
        self.input: TensorSpec = entry.input
        self.output: TensorSpec | None = entry.output
        self.precision = entry.precision
        self.verified = bool(integrity.get("verified"))
        self._labels = tuple(str(x) for x in integrity.get("labels") or ())
        self.runner = open_runner(self.path, threads=threads, content=content)  # the bytes verified run
        self._quant: dict | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names the artifact was built with (``"0"``, ``"1"``, ... when it has none)."""
        return self._labels

    def __enter__(self) -> "Classifier":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> "Classifier":
        """Load the artifact into its runtime (``with`` does this for you)."""
        if not self.runner.active:
            self.runner.activate()
            try:
                signature.agree(self.runner, self.input, self.output, self._labels, f"artifact {str(self.path)!r}")
            except EdgecnError:
                self.runner.deactivate()
                raise
            self._quant = output_quant(self.runner, self.output)
        return self

    def close(self) -> None:
        """Release the runtime."""
        if self.runner.active:
            self.runner.deactivate()

    def predict(self, image: Any, layout: str = "HWC") -> Prediction:
        """The model's answer for one image (a path, a PIL image or a numpy array in ``layout``)."""
        self.open()
        feed = prepare(to_unit_float(image, layout)[None], self.input)
        logits = to_logits(self.runner.infer(feed), self._quant).reshape(-1)
        labels = self._labels if len(self._labels) == logits.size else tuple(str(i) for i in range(logits.size))
        return Prediction(logits, softmax(logits), labels)

    def predict_all(self, images: Iterable[Any], layout: str = "HWC") -> list[Prediction]:
        """``predict`` for each image, in order."""
        return [self.predict(image, layout) for image in images]


def classify(path: str | os.PathLike, image: Any, threads: int | None = None) -> Prediction:
    """One-shot: load the artifact at ``path``, answer ``image``, release the runtime."""
    with Classifier(path, threads=threads) as model:
        return model.predict(image)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max())
    return (z / z.sum()).astype(np.float32)


def to_unit_float(image: Any, layout: str = "HWC") -> np.ndarray:
    """An image as the caller has it -> HxWxC float32 in [0, 1] (C is 1 or 3).

    Accepts a path (decoded with Pillow), a PIL image, or a numpy array: HxW, or HxWxC /
    CxHxW (``layout``) with 1, 3 or 4 channels (alpha is dropped); uint8 and uint16 are
    scaled by their range, floats must already lie in [0, 1].
    """
    if layout not in LAYOUTS:
        raise EdgecnError(f"image layout {layout!r} is not one of {', '.join(LAYOUTS)}",
                          "pass layout='HWC' (what PIL, OpenCV and camera APIs give) or 'CHW'")
    if isinstance(image, (str, os.PathLike)):  # an image file or a .npy array, read as profile --data reads them
        from edgecn.runner.inputs import image_file

        return to_unit_float(image_file(Path(image)))
    if _is_pil(image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if not isinstance(image, np.ndarray):
        raise EdgecnError(f"cannot read an image from a {type(image).__name__}",
                          "pass a file path, a PIL image or a numpy array (HxW or HxWxC)")
    a = image
    if a.ndim == 3 and layout == "CHW":
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or min(a.shape[:2]) < 1 or max(a.shape[:2]) > MAX_SIDE:
        raise EdgecnError(f"image array has shape {tuple(image.shape)} ({layout}); expected HxW or "
                          f"{'HxWxC' if layout == 'HWC' else 'CxHxW'} with C in 1, 3, 4 and sides of 1-{MAX_SIDE}",
                          "pass one image (not a batch: use predict_all); layout='CHW' for channels first")
    a = a[..., :3]
    kind = a.dtype.kind
    if kind == "u" and a.dtype.itemsize <= 2:
        return a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    if kind == "f":
        a = a.astype(np.float32)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
            raise EdgecnError(f"float image values span {lo:g} to {hi:g}; float images must lie in [0, 1]",
                              "divide 0-255 data by 255 (or pass it as uint8), and the model's own "
                              "normalisation is applied for you: do not normalise first")
        return np.clip(a, 0.0, 1.0)
    raise EdgecnError(f"image array dtype {a.dtype} is not an image type",
                      "pass uint8 (0-255), uint16 (0-65535) or float32 in [0, 1]")


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.") and hasattr(image, "convert") and hasattr(image, "size")
