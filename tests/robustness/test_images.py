"""Image files as users and attackers make them, read by the one image reader (training, calibration
and the device runner all go through edgecn.runner.images.open_image)."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from edgecn.errors import EdgecnError
from edgecn.runner.images import MAX_PIXELS, open_image
from robust_helpers import COUNTS


def _png_claiming(path, w, h):
    """A valid small PNG whose header (with a correct CRC) claims w x h pixels."""
    Image.new("L", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _bad_files(tmp):
    out = {}
    for w, h in ((20000, 20000), (MAX_PIXELS, 2), (1, MAX_PIXELS + 1), (2**31 - 1, 2**31 - 1)):
        p = tmp / f"claims-{w}x{h}.png"
        _png_claiming(p, w, h)
        out[p.name] = p
    good = tmp / "good.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(good)
    raw = good.read_bytes()
    for cut in (0, 8, 20, 33, len(raw) // 2):  # what is left after the pixel data is not checked
        (tmp / f"cut{cut}.png").write_bytes(raw[:cut])
        out[f"cut{cut}.png"] = tmp / f"cut{cut}.png"
    (tmp / "text.jpg").write_text("not an image")
    out["text.jpg"] = tmp / "text.jpg"
    (tmp / "dir.png").mkdir()
    out["dir.png"] = tmp / "dir.png"
    os.mkfifo(tmp / "fifo.png")
    out["fifo.png"] = tmp / "fifo.png"
    return out


def test_bad_images_are_refused_with_one_line(tmp_path):
    for name, path in _bad_files(tmp_path).items():
        with pytest.raises(EdgecnError) as e:
            open_image(path)
            pytest.fail(f"{name} was read")
        assert "\n" not in e.value.message and e.value.fix, name
        COUNTS["bad_inputs"] += 1


@pytest.mark.parametrize("mode, value, want", [("I;16", 32768, 128), ("I;16", 65535, 255), ("I", 1000, 4),
                                               ("F", 0.5, 128), ("L", 77, 77)])
def test_deep_greyscale_keeps_its_range(tmp_path, mode, value, want):
    path = tmp_path / ("deep.png" if mode in ("I;16", "L") else "deep.tiff")
    arr = np.full((6, 6), value, dtype={"I;16": np.uint16, "I": np.int32, "F": np.float32, "L": np.uint8}[mode])
    im = Image.fromarray(arr)
    assert im.mode == mode
    im.save(path)
    rgb = np.asarray(open_image(path, "RGB"))
    assert rgb.shape == (6, 6, 3) and abs(int(rgb[0, 0, 0]) - want) <= 1, rgb[0, 0]
    COUNTS["bad_inputs"] += 1


def test_npy_inputs_of_every_wrong_kind_are_refused(tmp_path):
    """.npy inputs (profile --data FOLDER): only plain numeric HxW or HxWxC arrays, never unpickled."""
    from edgecn.runner.inputs import read_image

    cases = {"structured": np.zeros((4, 4), dtype=[("a", "f4"), ("b", "i4")]), "complex": np.zeros((4, 4), np.complex64),
             "strings": np.array([["a", "b"]]), "objects": np.array([[1, None]], dtype=object),
             "4-d": np.zeros((1, 4, 4, 3), np.float32), "5 channels": np.zeros((4, 4, 5), np.float32),
             "empty": np.zeros((0, 4), np.float32)}
    for name, arr in cases.items():
        p = tmp_path / f"{name}.npy"
        np.save(p, arr, allow_pickle=True)
        with pytest.raises((ValueError, EdgecnError)):
            read_image(p)
        COUNTS["bad_inputs"] += 1
    np.savez(tmp_path / "archive.npz", a=np.zeros(3))
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
    with pytest.raises(ValueError):
        read_image(tmp_path / "archive.npy")
    assert read_image(_saved(tmp_path / "ok.npy", np.ones((4, 4), np.uint8))).shape == (4, 4, 1)


def _saved(path, arr):
    np.save(path, arr)
    return path
