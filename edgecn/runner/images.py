"""Reading one image file: the one place training, calibration and the device runner open images.

Torch-free; needs Pillow. Refuses what is not a regular file, what claims more than
``MAX_PIXELS`` before it is decoded (a tiny PNG can claim 20000x20000), and what Pillow cannot
decode; reads 16-bit and 32-bit greyscale at their real range (Pillow's ``convert("RGB")``
clips them to white).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from edgecn.errors import EdgecnError

MAX_PIXELS = 8192 * 8192
"""Largest width x height accepted (64 MP, a large camera frame); bigger is refused before decoding."""


def open_image(path: str | os.PathLike, mode: str = "RGB"):
    """The image at ``path``, decoded and converted to ``mode`` ("RGB" or "L"), as a PIL image."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise EdgecnError(f"reading {Path(path).suffix} images needs Pillow", "pip install pillow") from None
    p = Path(path)
    if not p.is_file():
        raise EdgecnError(f"image {str(p)!r} is not a regular file", "pass image files (or a folder of them)")
    fix = "remove or replace the file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise EdgecnError(f"image {str(p)!r} claims {w}x{h} pixels, more than the {MAX_PIXELS:,} "
                                      "edgecn reads", "resize it first (models here take a few hundred pixels a side)")
                im.load()
                return _to_8bit(im, Image).convert(mode)
    except EdgecnError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            OSError, ValueError, SyntaxError, EOFError) as e:
        raise EdgecnError(f"image {str(p)!r} cannot be read ({type(e).__name__}: {str(e)[:120]})", fix) from e


def _to_8bit(im, Image):
    """16-bit ("I;16*") and 32-bit ("I", "F") greyscale scaled into 8 bits by their range, not clipped."""
    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) <= 65535 else float(a.max())
        return Image.fromarray(np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8), "L")
    if im.mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float64))
        top = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        return Image.fromarray(np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8), "L")
    return im
