"""Calibration sets (class-stratified from training data, or a folder of images), recipes and the range cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
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

    def load(self, names=None, say=None) -> dict[str, tuple[float, float]] | None:
        """The cached ranges (for exactly ``names``, when given), or None: not cached, or a bad entry.

        An entry is trusted only whole: the sha256 it carries matches its ranges, each range is
        two finite float32 numbers lo <= hi, and it covers exactly the tensors asked for. A bad
        one (damaged, truncated, hand-edited, another format) is set aside as ``KEY.json.bad``
        with one line through ``say`` (stderr by default) and the model is calibrated again:
        never a wrong range, never an error for what is only a cache.
        """
        if not os.path.lexists(self.path):
            return None
        ranges, problem = self._read()
        if problem is None and names is not None and set(ranges) != set(names):
            problem = "is for other tensors"
        if problem is None:
            return ranges
        from edgecn.fileio import set_aside

        bad = set_aside(self.path)
        line = f"edgecn: cached calibration ranges {str(self.path)!r} {problem}; set aside as {bad.name}, calibrating again"
        (say or (lambda text: print(text, file=sys.stderr)))(line)
        return None

    def _read(self) -> tuple[dict, str | None]:
        import math
        import stat

        from edgecn.limits import read_json

        if not stat.S_ISREG(os.lstat(self.path).st_mode):
            return {}, "is not a file"
        try:
            doc = read_json(self.path, "cached calibration ranges", 64 << 20, "")
        except EdgecnError as e:
            return {}, f"cannot be read ({e.what.split(' is ', 1)[-1]})"
        if not isinstance(doc, dict) or doc.get("format") != RANGES_FORMAT or not isinstance(doc.get("ranges"), dict):
            return {}, "is not an edgecn ranges entry (written by another version, or damaged)"
        if doc.get("sha256") != _ranges_digest(doc["ranges"]):
            return {}, "does not match its checksum (damaged or edited)"
        ranges = {}
        for name, rng in doc["ranges"].items():
            ok = (isinstance(rng, list) and len(rng) == 2
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng))
            if not ok or not all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in rng) or rng[0] > rng[1]:
                return {}, f"holds a range for {name!r} that is not two finite numbers lo <= hi"
            ranges[name] = (float(rng[0]), float(rng[1]))
        return ranges, None

    def store(self, ranges: dict) -> None:
        ranges = {str(k): [float(v[0]), float(v[1])] for k, v in ranges.items()}
        atomic_write_text(self.path, json.dumps({"format": RANGES_FORMAT, "sha256": _ranges_digest(ranges),
                                                 "ranges": ranges}, sort_keys=True))


RANGES_FORMAT = "edgecn-ranges-1"
FLOAT32_MAX = 3.4028234663852886e38


def _ranges_digest(ranges) -> str:
    return hashlib.sha256(json.dumps(ranges, sort_keys=True).encode()).hexdigest()
