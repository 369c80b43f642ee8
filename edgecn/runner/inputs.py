"""Inputs for profiling: random, images from a folder, or the held-out digits, shaped and quantized per the manifest.

Torch-free; Pillow is needed only for image files (the digits ship with the runner).
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.runner.base import TensorInfo
from edgecn.runner.evaluate import to_feed
from edgecn.runner.manifest import TensorSpec

MAX_ARRAY_ELEMENTS = 8192 * 8192 * 4
"""Largest .npy input accepted (as many values as the largest image open_image reads)."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm")


@dataclasses.dataclass
class Inputs:
    """Feeds to cycle through, and labels when the source has them (for top-1)."""

    source: str
    arrays: list[np.ndarray]
    labels: list[int] | None = None


def input_spec(runner_info: TensorInfo, manifest_spec: TensorSpec | None) -> TensorSpec:
    """The manifest's input spec if there is one, else what the runtime reports (no normalisation)."""
    if manifest_spec is not None:
        return manifest_spec
    layout = "NHWC" if len(runner_info.shape) == 4 and runner_info.shape[-1] in (1, 3) else "NCHW"
    return TensorSpec(runner_info.name, runner_info.shape, runner_info.dtype, layout, runner_info.quant, None)


def random_inputs(spec: TensorSpec, count: int = 8, seed: int = 0) -> Inputs:
    """``count`` random feeds: images in [0, 1] normalised and quantized like real ones."""
    rng = np.random.default_rng(seed)
    return Inputs("random", [prepare(rng.random(_nhwc(spec), dtype=np.float32), spec) for _ in range(count)])


def digits_inputs(spec: TensorSpec) -> Inputs:
    """The 359 held-out handwritten digits (8x8, shipped with the runner), resized to the input size."""
    from edgecn.runner.digits import heldout

    images, labels = heldout()
    return Inputs("digits (held-out split)", [prepare(img[None, ..., None], spec) for img in images],
                  [int(t) for t in labels])


def folder_inputs(folder: str | Path, spec: TensorSpec, labels: list[str]) -> Inputs:
    """Images (or .npy arrays, HWC in [0, 1]) from ``folder``; class subfolders named like labels give top-1."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES + (".npy",))
    if not files:
        raise EdgecnError(f"no images in {str(folder)!r}", f"put {', '.join(IMAGE_SUFFIXES)} or .npy files there")
    names = labels or sorted({p.parent.name for p in files if p.parent != folder})
    arrays, targets = [], []
    for p in files:
        arrays.append(prepare(image_file(p)[None], spec))
        targets.append(names.index(p.parent.name) if p.parent.name in names else -1)
    has_labels = all(t >= 0 for t in targets)
    return Inputs(f"folder:{folder}", arrays, targets if has_labels else None)


def image_file(p: Path) -> np.ndarray:
    """``read_image``, with what cannot be used as an EdgecnError naming the file (profile's --data, classify)."""
    try:
        return read_image(p)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # np.load reads a "PK" file as .npz
        raise EdgecnError(f"input file {str(p)!r} cannot be used ({type(e).__name__}: {str(e)[:120]})",
                          "remove or replace it (images, or .npy arrays HxWxC in [0, 1])") from e


def read_image(p: Path) -> np.ndarray:
    """An image file (decoded with Pillow) or a .npy array (never unpickled) as HxWxC float32 in [0, 1].

    Raises OSError/ValueError for what cannot be used; callers name the file in their error.
    """
    if p.suffix.lower() == ".npy":
        head = np.load(p, allow_pickle=False, mmap_mode="r")  # never unpickle; shape and dtype before data
        if not isinstance(head, np.ndarray):
            raise ValueError("it is an .npz archive or other file, not one .npy array")
        if head.dtype.kind not in "biuf" or head.size > MAX_ARRAY_ELEMENTS:
            raise ValueError(f"array is {head.dtype} with {head.size} values; expected a plain numeric "
                             f"HxW or HxWxC array of at most {MAX_ARRAY_ELEMENTS} values")
        a = np.asarray(head, dtype=np.float32)
        a = a if a.ndim == 3 else a[..., None]
        if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or min(a.shape[:2]) < 1:
            raise ValueError(f"array has shape {tuple(np.load(p, allow_pickle=False).shape)}, expected HxW or HxWxC with C in 1, 3, 4")
        return a
    from edgecn.runner.images import open_image

    return np.asarray(open_image(p, "RGB"), dtype=np.float32) / 255.0


def _nhwc(spec: TensorSpec) -> tuple[int, ...]:
    s = spec.shape
    if len(s) != 4:
        return tuple(s)
    return (s[0], s[2], s[3], s[1]) if spec.layout == "NCHW" else tuple(s)


def prepare(image: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """An N,H,W,C float image in [0, 1] -> the model's input: resized, channels, normalised, laid out, quantized."""
    if len(spec.shape) == 4:
        n, h, w, c = _nhwc(spec)
        image = _resize(image, h, w)
        if image.shape[-1] != c:  # grey <-> colour
            image = image.mean(axis=-1, keepdims=True) if c == 1 else np.repeat(image[..., :1], c, axis=-1)
        if spec.normalize:
            image = (image - np.asarray(spec.normalize["mean"], np.float32)) / np.asarray(spec.normalize["std"], np.float32)
        image = image.transpose(0, 3, 1, 2)  # NCHW, as models are trained; to_feed lays it out
    return to_feed(image, spec)


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of N,H,W,C with half-pixel centres (torch's ``align_corners=False``).

    Matches how training resizes when it enlarges (the digits), so top-1 on the device
    equals the build's; shrinking skips torch's antialiasing, which is close enough for checks.
    """
    if image.shape[1:3] == (h, w):
        return image
    image = _lerp(image, h, axis=1)
    return _lerp(image, w, axis=2)


def _lerp(image: np.ndarray, size: int, axis: int) -> np.ndarray:
    n = image.shape[axis]
    src = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0, None)
    lo = np.minimum(src.astype(int), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = (src - lo).astype(np.float32)
    shape = [1] * image.ndim
    shape[axis] = size
    frac = frac.reshape(shape)
    return np.take(image, lo, axis=axis) * (1 - frac) + np.take(image, hi, axis=axis) * frac
