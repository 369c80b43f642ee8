"""Calibration sets (class-stratified from training data, or a folder of images), recipes and the range cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.fileio import atomic_write_text
from edgecn.quantize.ranges import check_method

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclasses.dataclass(frozen=True)
class CalibrationRecipe:
    """How to calibrate: loaded from ``calibration/<name>.toml``.

    Attributes:
        name: recipe name (the file stem).
        method: ``minmax``, ``percentile`` or ``entropy``.
        percentile: share of values kept by ``percentile`` (in %).
        size: calibration images drawn from the training data.
        min_size: fewer usable images than this is an error (ranges would be noise).
        seed: seed of the stratified draw.
    """

    name: str = "default"
    method: str = "percentile"
    percentile: float = 99.99
    size: int = 128
    min_size: int = 16
    seed: int = 0

    def __post_init__(self):
        check_method(self.method)
        if not 50.0 < self.percentile <= 100.0:
            raise EdgecnError(f"calibration recipe {self.name!r}: percentile {self.percentile} is out of range",
                              "use a value in (50, 100], e.g. 99.99")
        if not 0 <= self.seed < 2**32:
            raise EdgecnError(f"calibration recipe {self.name!r}: seed {self.seed} is out of range",
                              "use a seed from 0 to 4294967295")
        if self.size > 100_000:
            raise EdgecnError(f"calibration recipe {self.name!r}: size {self.size} is more than 100000 images",
                              "calibrate on a few hundred images (more adds time, not accuracy)")
        if self.size < 1 or self.min_size < 1 or self.size < self.min_size:
            raise EdgecnError(f"calibration recipe {self.name!r}: size {self.size} / min_size {self.min_size} are inconsistent",
                              "use positive sizes with size >= min_size")


def recipes_dir() -> Path:
    """``$EDGECN_CALIBRATION_DIR`` (a user's own recipes), else the recipes shipped inside the package.

    They live in ``edgecn/shipped/calibration/`` so a wheel carries them; the checkout's
    ``calibration/`` is a link to that folder.
    """
    from edgecn import environment

    return environment.folder(environment.CALIBRATION, Path(__file__).resolve().parents[1] / "shipped" / "calibration")


def load_recipe(name_or_path: str) -> CalibrationRecipe:
    """A recipe by name (``calibration/<name>.toml``) or path; EdgecnError names a bad field."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = recipes_dir() / f"{name_or_path}.toml"
    if not path.exists():
        known = sorted(p.stem for p in recipes_dir().glob("*.toml"))
        raise EdgecnError(f"calibration recipe {name_or_path!r} not found",
                          f"use one of {', '.join(known) or '(none)'} or pass a .toml path")
    from edgecn.limits import read_toml

    table = read_toml(path, "calibration recipe", "fix the syntax")
    fields = {f.name: f.type for f in dataclasses.fields(CalibrationRecipe)}
    for key, value in table.items():
        if key not in fields or key == "name":
            raise EdgecnError(f"calibration recipe {str(path)!r}: unknown key {key!r}",
                              f"use only {', '.join(k for k in fields if k != 'name')}")
        want = {"str": str, "float": (int, float), "int": int}[fields[key]]
        if isinstance(value, bool) or not isinstance(value, want):
            raise EdgecnError(f"calibration recipe {str(path)!r}: field {key!r} must be a {fields[key]}",
                              f"fix the value of {key!r}")
    return CalibrationRecipe(name=path.stem, **table)


def stratified_indices(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """``size`` indices drawn round-robin over classes, so every class is represented.

    Deterministic for a given ``seed``; returns all indices when ``size`` exceeds them.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picked: list[int] = []
    depth = 0
    while len(picked) < size and any(depth < len(p) for p in per_class):
        picked.extend(int(p[depth]) for p in per_class if depth < len(p))
        depth += 1
    return np.array(sorted(picked[:size]), dtype=np.int64)


def from_dataset(dataset: Any, recipe: CalibrationRecipe, size: int | None = None):
    """A class-stratified calibration tensor (N, C, H, W) drawn from a TensorDataset-like set.

    A set streamed from files (``edgecn.train.files.ImageFiles``, with ``targets``) decodes only
    the images drawn, not the whole set.
    """
    import torch

    if hasattr(dataset, "targets") and hasattr(dataset, "files"):
        idx = stratified_indices(np.asarray(dataset.targets), size or recipe.size, recipe.seed)
        x = torch.stack([dataset[int(i)][0] for i in idx]) if len(idx) else torch.zeros(0)
        return check_size(x, recipe.min_size, "the training data")
    x, y = _tensors(dataset)
    idx = stratified_indices(y.numpy(), size or recipe.size, recipe.seed)
    return check_size(x[idx], recipe.min_size, "the training data")


def from_folder(folder: str | os.PathLike, input_size: int, in_channels: int, normalize: dict | None,
                min_size: int):
    """Every image under ``folder`` (sorted by path), resized, scaled to [0, 1] and normalised."""
    import torch
    from PIL import Image

    from edgecn.runner.images import open_image

    folder = Path(folder)
    if not folder.is_dir():
        raise EdgecnError(f"calibration folder {str(folder)!r} does not exist", "pass a folder of images")
    images = []
    for p in sorted(q for q in folder.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES):
        im = open_image(p, "L" if in_channels == 1 else "RGB").resize((input_size, input_size), Image.BILINEAR)
        images.append(np.asarray(im, dtype=np.float32).reshape(input_size, input_size, -1) / 255.0)
    x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy()) if images else torch.zeros(0)
    if images and normalize:
        mean = torch.tensor(normalize["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(normalize["std"]).view(1, -1, 1, 1)
        x = (x - mean) / std
    return check_size(x, min_size, f"folder {str(folder)!r}")


def check_size(x, min_size: int, source: str):
    """``x`` if it holds at least ``min_size`` images; EdgecnError otherwise."""
    n = 0 if x.dim() == 0 else int(x.shape[0]) if x.numel() else 0
    if n < min_size:
        raise EdgecnError(f"calibration set from {source} has {n} image(s), fewer than the {min_size} needed",
                          "add images (or raise --calibration-size), or lower min_size in the calibration recipe")
    return x


def _tensors(dataset: Any):
    import torch

    if hasattr(dataset, "tensors"):
        return dataset.tensors[0], dataset.tensors[1]
    if len(dataset) == 0:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(list(xs)), torch.as_tensor(ys)


def cache_root() -> Path:
    """``$EDGECN_CACHE_DIR`` (default ``~/.cache/edgecn``): calibration ranges and cost tables live under it."""
    from edgecn import environment

    return environment.cache_dir()


def cache_dir() -> Path:
    """``$EDGECN_CACHE_DIR/calibration`` (default ``~/.cache/edgecn/calibration``)."""
    return cache_root() / "calibration"


def cache_key(model, calib, *parts: Any) -> str:
    """sha256 over the model's weights and buffers, the calibration tensor and ``parts``."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(calib.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps([str(p) for p in parts]).encode())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class RangeCache:
    """Calibrated activation ranges stored as JSON under a content key."""

    key: str
    folder: Path = dataclasses.field(default_factory=cache_dir)

    @property
    def path(self) -> Path:
        return self.folder / f"{self.key}.json"

    def load(self) -> dict | None:
        from edgecn.errors import EdgecnError
        from edgecn.limits import read_json

        if not self.path.exists():
            return None
        try:
            return read_json(self.path, "cached calibration ranges", 64 << 20, "")
        except EdgecnError:
            return None  # a damaged entry is just recomputed

    def store(self, ranges: dict) -> None:
        atomic_write_text(self.path, json.dumps(ranges, sort_keys=True))
