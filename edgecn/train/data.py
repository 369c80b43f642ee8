"""Data sets for training: the embedded digits, CIFAR python folders, ImageFolder trees.

Nothing is downloaded. ``"digits"`` is scikit-learn's scanned handwritten digits (shipped
inside scikit-learn); anything else is a local folder. Small sources are decoded once into
float32 NCHW tensors (3 channels, ``input_size`` square); an ImageFolder tree whose decoded
tensors would exceed ``max_in_memory_mb`` is streamed instead: files are decoded and augmented
per step in loader worker processes (``edgecn.train.files``), so memory does not grow with the
data set. Either way images are normalised with the training split's own per-channel mean and
std (recorded in ``Dataset.normalize`` so deployment can repeat it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from edgecn.errors import EdgecnError
from edgecn.splits import HELDOUT_FRACTION, SPLIT_SEED, stratified_split  # noqa: F401 (re-exported)

DIGITS_INPUT_SIZE = 16  # twice the 8x8 scan: enough for 3 dense blocks, 4x cheaper than 32x32
MAX_IN_MEMORY_MB = 2048
"""Decoded size (float32) above which an ImageFolder tree is streamed from disk instead of held."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A loaded data set, ready to train on.

    Attributes:
        name: ``"digits"`` or the folder it came from.
        train: ``(x, y)`` items, x float32 CHW normalised, y int64: a ``TensorDataset`` when the
            source fits in memory, else an ``edgecn.train.files.ImageFiles`` (see ``streamed``).
        heldout: same, for evaluation only.
        labels: class names; their count is the model's output count.
        normalize: ``{"mean": [3 floats], "std": [3 floats]}`` for pixels scaled to [0, 1].
        input_size: side of the square images.
        mirror_ok: whether horizontal flips keep the label (not for digits).
    """

    name: str
    train: torch.utils.data.Dataset
    heldout: torch.utils.data.Dataset
    labels: list[str]
    normalize: dict
    input_size: int
    mirror_ok: bool = True

    @property
    def streamed(self) -> bool:
        """True when images are read from disk per step rather than held as tensors."""
        return not isinstance(self.train, TensorDataset)


def load_dataset(source: str, input_size: int = 32, max_in_memory_mb: int = MAX_IN_MEMORY_MB) -> Dataset:
    """Load ``"digits"`` or a local folder (CIFAR-10/100 python layout, or ImageFolder).

    Args:
        source: ``"digits"`` or a folder path.
        input_size: side in pixels the images are resized to.
        max_in_memory_mb: an ImageFolder tree whose decoded images would take more is streamed.

    Raises:
        EdgecnError: the source does not exist or does not have a known, valid layout.
    """
    if input_size < 8:
        raise EdgecnError(f"input size {input_size} is too small", "use an input side of at least 8 pixels")
    if source == "digits":
        return _digits(input_size)
    from edgecn.train import folders

    path = Path(source)
    if not path.exists():
        raise EdgecnError(f"data {source!r} is neither the embedded 'digits' set nor an existing folder",
                          "pass 'digits', a CIFAR-10/100 python folder (data_batch_1..5, test_batch, batches.meta) "
                          "or an ImageFolder tree (one subfolder of images per class)")
    if not path.is_dir():
        raise EdgecnError(f"data {source!r} is a file, not a folder",
                          "pass the folder that holds the data (e.g. cifar-10-batches-py/), not a file in it")
    return folders.load_folder(path, input_size, int(max_in_memory_mb) * 2**20)


def default_input_size(source: str, model_input_size: int) -> int:
    """The input side to train at when none is given: 16 for the 8x8 digits, else the model's own.

    (Training raises 16 to the smallest of 32, 64 a model can run at, e.g. 32 for SqueezeNet.)
    """
    return DIGITS_INPUT_SIZE if source == "digits" else model_input_size


def _digits(input_size: int) -> Dataset:
    from sklearn.datasets import load_digits

    raw = load_digits()
    pixels = torch.from_numpy(raw.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
    labels = np.asarray(raw.target, dtype=np.int64)
    train_idx, held_idx = stratified_split(labels, HELDOUT_FRACTION, SPLIT_SEED)
    images = resize(pixels, input_size).expand(-1, 3, -1, -1)
    return build_dataset("digits", images[train_idx], labels[train_idx], images[held_idx], labels[held_idx],
                         [str(n) for n in raw.target_names], input_size, mirror_ok=False)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of NCHW float images to ``size`` x ``size`` (antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images
    shrink = images.shape[-1] > size or images.shape[-2] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def build_dataset(name: str, x_train: torch.Tensor, y_train, x_held: torch.Tensor, y_held,
                  labels: list[str], input_size: int, mirror_ok: bool = True) -> Dataset:
    """Normalise with the training split's statistics and wrap into a ``Dataset``."""
    if len(y_held) == 0 or len(y_train) == 0:
        raise EdgecnError(f"data {name!r} has too few images to hold some out for scoring "
                          f"({len(y_train)} to train on, {len(y_held)} held out)",
                          "give each class at least 2 images (5 or more for a meaningful held-out top-1)")
    x_train = x_train.float().contiguous()
    mean = x_train.mean(dim=(0, 2, 3))
    std = x_train.std(dim=(0, 2, 3)).clamp(min=1e-3)

    def norm(x):
        return ((x.float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).contiguous()

    def target(y):
        return torch.as_tensor(np.asarray(y), dtype=torch.int64)

    return Dataset(name=name, train=TensorDataset(norm(x_train), target(y_train)),
                   heldout=TensorDataset(norm(x_held), target(y_held)), labels=list(labels),
                   normalize={"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
                   input_size=int(input_size), mirror_ok=mirror_ok)
