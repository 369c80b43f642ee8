"""The held-out digits, shipped with the runner: ``--data digits`` on a device needs no scikit-learn.

Torch-free and sklearn-free. ``data/digits-heldout.npz`` holds the 359 images of scikit-learn's
handwritten digits (the UCI "Optical Recognition of Handwritten Digits" set, CC BY 4.0:
E. Alpaydin, C. Kaynak, 1998) that ``edgecn.splits.stratified_split`` holds out, exactly as
training and the build score them: 8x8 pixels of 0-16, their labels and their index in the full
set (11 KB compressed). Loading it instead of scikit-learn keeps ``edgecn profile --accuracy`` at the
runtime's own memory (scikit-learn and SciPy add about 110 MiB of peak RSS) and works where
scikit-learn is not installed. ``python -m edgecn.runner.digits`` rewrites the file from
scikit-learn; a test checks the two agree.
"""

from __future__ import annotations

import io
import sys
from importlib import resources

import numpy as np

RESOURCE = "data/digits-heldout.npz"
COUNT = 359


def heldout() -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: N x 8 x 8 float32 in [0, 1] and N int64 labels, in the split's order."""
    raw = resources.files("edgecn.runner").joinpath(RESOURCE).read_bytes()  # works from the runner zip too
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    if images.shape != (COUNT, 8, 8) or labels.shape != (COUNT,) or images.max(initial=0) > 16:
        from edgecn.errors import EdgecnError

        raise EdgecnError(f"the shipped digits ({RESOURCE}) are damaged", "reinstall edgecn")
    return (images / np.float32(16.0)).astype(np.float32), labels.astype(np.int64)


def from_sklearn() -> dict[str, np.ndarray]:
    """The arrays of the shipped file, made from scikit-learn's copy of the data."""
    from sklearn.datasets import load_digits

    from edgecn.splits import stratified_split

    d = load_digits()
    _, held = stratified_split(np.asarray(d.target))
    return {"images": d.images[held].astype(np.uint8), "labels": d.target[held].astype(np.uint8),
            "index": held.astype(np.uint16)}


def main() -> int:
    out = resources.files("edgecn.runner").joinpath(RESOURCE)
    np.savez_compressed(str(out), **from_sklearn())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
