"""Where training batches come from: tensors in memory, or files streamed by worker processes.

Both sources give the same thing: ``epoch(e)`` yields ``steps`` batches ``(x, y)`` on the CPU,
in an order and with augmentation that depend only on (seed, epoch) and the process's rank,
and time how long the trainer waited for each (``waited``): the share of an epoch spent
waiting says whether the loader or the model is the bottleneck.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from edgecn.train.recipes import augmentation_for


class Batches:
    """The training batches of one process."""

    steps: int
    waited: float = 0.0
    workers: int = 0

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError


class TensorBatches(Batches):
    """Batches indexed out of in-memory tensors; augmentation applied per batch in this process."""

    def __init__(self, ds, config, ctx):
        self.ds, self.config, self.ctx = ds, config, ctx
        self.sampler = DistributedSampler(ds.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                          seed=config.seed, drop_last=True)
        self.steps = max(1, len(self.sampler) // config.batch_size)
        self.recipe = augmentation_for(ds.input_size) if config.augment else None

    def epoch(self, epoch):
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch * 7919 + self.ctx.rank)
        x_all, y_all = self.ds.train.tensors
        self.waited = 0.0
        b = self.config.batch_size
        for i in range(self.steps):
            t0 = time.perf_counter()
            idx = order[i * b:(i + 1) * b]
            if self.recipe == "random-resized-crop":
                x = resized_crops(x_all, idx, self.config.seed, epoch, self.ds.mirror_ok)
            elif self.recipe == "shift-flip":
                x = augment(x_all[idx], gen, self.ds.mirror_ok)
            else:
                x = x_all[idx]
            y = y_all[idx]
            self.waited += time.perf_counter() - t0
            yield x, y


class StreamBatches(Batches):
    """Batches decoded and augmented from files by a DataLoader with worker processes."""

    def __init__(self, ds, config, ctx):
        from edgecn.train.files import SeededIndices, default_workers

        recipe = augmentation_for(ds.input_size) if config.augment else None
        dataset = ds.train.with_options(augmentation=recipe, mirror=ds.mirror_ok)
        inner = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                   seed=config.seed, drop_last=True)
        self.sampler = SeededIndices(inner, config.seed)
        self.steps = max(1, len(inner) // config.batch_size)
        self.workers = default_workers() if config.workers is None else config.workers
        self.loader = DataLoader(
            dataset, batch_size=config.batch_size, sampler=self.sampler, drop_last=True,
            num_workers=self.workers, pin_memory=ctx.device.type == "cuda",
            persistent_workers=self.workers > 0, prefetch_factor=4 if self.workers else None,
            # Its own generator: creating an iterator must not draw from the global RNG that
            # dropout uses, or a resumed run would differ from an uninterrupted one.
            generator=torch.Generator().manual_seed(config.seed))

    def epoch(self, epoch):
        from edgecn.train.files import user_errors

        self.sampler.set_epoch(epoch)
        self.waited = 0.0
        it = user_errors(self.loader)
        for _ in range(self.steps):
            t0 = time.perf_counter()
            batch = next(it, None)
            if batch is None:
                return
            self.waited += time.perf_counter() - t0
            yield batch


def training_batches(ds, config, ctx) -> Batches:
    """The batch source for ``ds``: streamed when the data set is, else from tensors."""
    return (StreamBatches if ds.streamed else TensorBatches)(ds, config, ctx)


class HeldoutBatches:
    """A held-out set in order, unaugmented: all of it, or one rank's share (every ``world_size``-th item).

    For a streamed set the DataLoader and its workers are made once and kept between epochs.
    """

    def __init__(self, dataset, batch_size: int, ctx, workers: int = 0, shard: bool = True):
        self.dataset, self.batch_size = dataset, batch_size
        self.share = list(range(ctx.rank, len(dataset), ctx.world_size)) if shard else list(range(len(dataset)))
        self.loader = None
        if not isinstance(dataset, torch.utils.data.TensorDataset):
            self.loader = DataLoader(torch.utils.data.Subset(dataset, self.share), batch_size=batch_size,
                                     num_workers=workers, pin_memory=ctx.device.type == "cuda",
                                     persistent_workers=workers > 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from edgecn.train.files import user_errors

        if self.loader is not None:
            yield from user_errors(self.loader)
            return
        x, y = self.dataset.tensors
        for i in range(0, len(self.share), self.batch_size):
            idx = torch.tensor(self.share[i:i + self.batch_size], dtype=torch.long)
            yield x[idx], y[idx]


def resized_crops(x_all: torch.Tensor, idx: torch.Tensor, seed: int, epoch: int, mirror: bool) -> torch.Tensor:
    """Random-resized crops (and flips) of in-memory images, drawn as for streamed files."""
    import random

    from edgecn.train.files import crop_box, item_seed

    _, _, h, w = x_all.shape
    out = torch.empty((len(idx), *x_all.shape[1:]), dtype=x_all.dtype)
    for k, i in enumerate(idx.tolist()):
        rng = random.Random(item_seed(seed, epoch, i))
        left, top, right, bottom = crop_box((w, h), rng)
        crop = x_all[i:i + 1, :, top:bottom, left:right]
        crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False,
                             antialias=(bottom - top > h or right - left > w))
        out[k] = crop[0].flip(-1) if mirror and rng.random() < 0.5 else crop[0]
    return out


def augment(x: torch.Tensor, gen: torch.Generator, mirror: bool) -> torch.Tensor:
    """Random shifts of up to 1/8 of the side (zero = mean padding), and flips when ``mirror``."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for k in range(n):
        dy, dx = int(offsets[k, 0]), int(offsets[k, 1])
        crop = padded[k, :, dy:dy + h, dx:dx + w]
        out[k] = crop.flip(-1) if mirror and flips[k] else crop
    return out
