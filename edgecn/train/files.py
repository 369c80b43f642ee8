"""Image files decoded and augmented on the fly: memory that does not grow with the data set.

An ImageFolder tree whose decoded tensors would exceed the in-memory limit is served by
``ImageFiles``: each item is opened with Pillow (through ``edgecn.runner.images.open_image``,
the one place images are read, with its size and format checks), resized or randomly cropped,
and normalised inside the DataLoader's worker processes.

Augmentation is reproducible regardless of workers: the sampler hands each worker
``(index, seed)`` keys, the seed a function of (run seed, epoch, index) only, so the same run
sees the same crops with 0 or 8 workers, and a resumed run sees what an uninterrupted one saw.

torchvision's transforms are not used: its PyPI wheels are built against the CUDA build of
torch, and fail to load their operators beside the CPU torch edgecn pins (``operator
torchvision::nms does not exist``). Pillow does the decoding and resampling; only the crop
parameters are drawn here (torchvision's RandomResizedCrop algorithm: area 8-100%, aspect
3/4-4/3, ten tries, then the largest centred crop of an allowed aspect).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from edgecn.errors import EdgecnError
from edgecn.runner.images import open_image
from edgecn.train.recipes import CROP_RATIO, CROP_SCALE



class ImageFiles(torch.utils.data.Dataset):
    """Images read from disk per item, as normalised float32 CHW tensors with int64 labels.

    Args:
        files: image paths.
        targets: class index of each file.
        input_size: side of the square the images become.
        augmentation: ``None`` (resize the whole image, as the device runner does),
            ``"shift-flip"`` or ``"random-resized-crop"`` (see ``edgecn.train.recipes``).
        mirror: whether flips keep the label.
        normalize: ``{"mean": [..], "std": [..]}`` for pixels in [0, 1], or None for raw [0, 1].
    """

    def __init__(self, files: list[str], targets, input_size: int, augmentation: str | None = None,
                 mirror: bool = True, normalize: dict | None = None):
        self.files = [str(f) for f in files]
        self.targets = np.asarray(targets, dtype=np.int64)
        self.input_size = int(input_size)
        self.augmentation = augmentation
        self.mirror = mirror
        self.normalize = normalize

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key) -> tuple[torch.Tensor, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        rng = random.Random(seed) if (seed is not None and self.augmentation) else None
        try:
            image = open_image(self.files[index], "RGB")
        except EdgecnError as e:
            raise ItemError(e) from None
        s = self.input_size
        if rng is not None and self.augmentation == "random-resized-crop":
            image = image.resize((s, s), _bilinear(), box=crop_box(image.size, rng))
            if self.mirror and rng.random() < 0.5:
                image = image.transpose(0)  # FLIP_LEFT_RIGHT
        else:
            image = image.resize((s, s), _bilinear())
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
        if self.normalize:
            mean = torch.tensor(self.normalize["mean"], dtype=torch.float32).view(-1, 1, 1)
            std = torch.tensor(self.normalize["std"], dtype=torch.float32).view(-1, 1, 1)
            x = (x - mean) / std
        if rng is not None and self.augmentation == "shift-flip":
            x = shift_flip(x, rng, self.mirror)
        return x, int(self.targets[index])

    def with_options(self, **changes) -> ImageFiles:
        """A copy with some of the constructor's options changed (same files)."""
        opts = {"input_size": self.input_size, "augmentation": self.augmentation, "mirror": self.mirror,
                "normalize": self.normalize, **changes}
        return ImageFiles(self.files, self.targets, **opts)

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image (without augmentation) and label as two tensors: for small evaluation sets only."""
        plain = self.with_options(augmentation=None)
        xs = [plain[i][0] for i in range(len(plain))]
        return torch.stack(xs) if xs else torch.empty(0), torch.from_numpy(self.targets.copy())


class ItemError(Exception):
    """An ``EdgecnError`` raised in a DataLoader worker, in a form that survives the trip back.

    DataLoader re-raises a worker's exception as ``type(msg)`` with the worker's traceback as
    text, which ``EdgecnError(what, fix)`` cannot take; ``as_user_error`` gets the original back.
    """

    _PATTERN = re.compile(r"EDGECN-ITEM-ERROR(\[.*?\])END", re.S)

    def __init__(self, error):
        text = error if isinstance(error, str) else f"EDGECN-ITEM-ERROR{json.dumps([error.what, error.fix])}END"
        super().__init__(text)

    def as_user_error(self) -> EdgecnError:
        found = self._PATTERN.findall(str(self))
        what, fix = json.loads(found[-1]) if found else (str(self).strip().splitlines()[-1], None)
        return EdgecnError(what, fix)


def user_errors(batches):
    """Iterate a DataLoader, turning a worker's unreadable image back into an ``EdgecnError``."""
    it = iter(batches)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except ItemError as e:
            raise e.as_user_error() from None
        yield item


def _bilinear():
    from PIL import Image

    return Image.BILINEAR


def crop_box(size: tuple[int, int], rng: random.Random) -> tuple[int, int, int, int]:
    """A random-resized-crop box ``(left, top, right, bottom)`` inside an image of ``size`` (w, h)."""
    width, height = size
    area = width * height
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return left, top, left + w, top + h
    aspect = width / height  # fall back to a centred crop of the nearest allowed aspect
    if aspect < CROP_RATIO[0]:
        w, h = width, int(round(width / CROP_RATIO[0]))
    elif aspect > CROP_RATIO[1]:
        w, h = int(round(height * CROP_RATIO[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def shift_flip(x: torch.Tensor, rng: random.Random, mirror: bool) -> torch.Tensor:
    """A random shift of up to 1/8 of the side (zero padding, i.e. the mean) and a flip when ``mirror``."""
    _, h, w = x.shape
    pad = max(1, h // 8)
    dy, dx = rng.randint(0, 2 * pad), rng.randint(0, 2 * pad)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    crop = padded[:, dy:dy + h, dx:dx + w]
    return crop.flip(-1) if mirror and rng.random() < 0.5 else crop.contiguous()


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of item ``index`` in ``epoch``: a function of these three only."""
    return ((seed * 1_000_003 + epoch) * 2_000_003 + index) % (2 ** 63)


class SeededIndices(Sampler):
    """``(index, item_seed)`` keys in the order of an inner (distributed) sampler."""

    def __init__(self, inner, seed: int):
        self.inner = inner
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((i, item_seed(self.seed, self.epoch, i)) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def default_workers() -> int:
    """Loader worker processes per training process: the cores left after the trainer, up to 8."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    from edgecn import environment

    local = environment.distributed()[3]
    return max(1, min(8, cores // local - 1))


def channel_stats(dataset: ImageFiles, sample: int = 1000, workers: int = 0) -> dict:
    """Per-channel mean and std of pixels in [0, 1], over a fixed, spread sample of ``dataset``.

    Decodes at most ``sample`` images (evenly spaced through the file list, so every class counts).
    """
    plain = dataset.with_options(augmentation=None, normalize=None)
    n = len(plain)
    picks = sorted({int(i) for i in np.linspace(0, n - 1, num=min(n, sample))}) if n else []
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(plain, picks), batch_size=64,
                                         num_workers=workers)
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    count = 0
    for x, _ in user_errors(loader):
        x = x.double()
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / max(count, 1)
    std = (squares / max(count, 1) - mean * mean).clamp(min=0).sqrt().clamp(min=1e-3)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
