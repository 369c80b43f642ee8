"""The training loop: SGD + Nesterov, per-iteration cosine LR, CondenseNet's condensing schedule.

``set_progress(model, iterations_done / total)`` runs before every step: the C-1 condensing
stages happen over the first half of training, the optimisation stage over the second.
Runs are reproducible on CPU: weights come from the seed, the data order and augmentation
of epoch ``e`` are functions of (seed, e), and ``last.pt`` holds the optimiser, RNG state
and history, so a resumed run ends bit-identical to one that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from edgecn.checkpoint import read_checkpoint, save_checkpoint
from edgecn.condense import condensing_stage_of, group_lasso, set_progress
from edgecn.errors import EdgecnError
from edgecn.runner.evaluate import learned_nothing
from edgecn.train import distributed
from edgecn.train.config import RESULT_FIELDS, TrainConfig


@dataclasses.dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        checkpoint: the final checkpoint (``out_dir/final.pt``).
        model: the trained model (training form, eval mode, on CPU).
        heldout_top1: top-1 accuracy on the held-out split, in [0, 1].
        epochs: epochs trained in total (including those before a resume).
        seconds: wall time of this call.
        history: one dict per epoch (loss, train_top1, lr, stage, seconds).
        labels: class names.
        warnings: what makes the result useless (top-1 at chance, one answer for every input).
    """

    checkpoint: Path
    model: torch.nn.Module
    heldout_top1: float
    epochs: int
    seconds: float
    history: list[dict]
    labels: list[str]
    warnings: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {"checkpoint": str(self.checkpoint), "heldout_top1": self.heldout_top1, "epochs": self.epochs,
                "seconds": self.seconds, "labels": self.labels, "history": self.history, "warnings": self.warnings}


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.data``; under torchrun, data-parallel over all ranks.

    Args:
        config: the run.
        progress: show a progress bar (rank 0 only).

    Raises:
        EdgecnError: bad data, an out_dir that already holds a run, or a mismatched resume.
    """
    ctx = distributed.setup()
    result = _run(config, ctx, progress)
    distributed.teardown(ctx)
    return result


def _run(config: TrainConfig, ctx: distributed.Context, progress: bool) -> TrainResult:
    from edgecn.models import check_input_size, create_model
    from edgecn.train.data import load_dataset

    start = time.perf_counter()
    out = Path(config.out_dir)
    _check_out_dir(out, config)
    size = _input_size(config)
    ds = load_dataset(config.data, size)
    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=len(ds.labels), input_size=size, **config.overrides)
    check_input_size(model, size)
    state = _restore(out / "last.pt", model, config, ctx) if config.resume else None
    model.to(ctx.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    history = list(state["history"]) if state else []
    meta = {"labels": ds.labels, "normalize": ds.normalize, "dataset": ds.name, "config": config.to_dict(),
            "world_size": ctx.world_size}
    _fit(model, optimizer, ds, config, ctx, history, meta, progress)
    set_progress(model, 1.0)  # a run too short to reach the optimisation stage still ends condensable
    top1 = evaluate(model, ds.heldout, device=ctx.device)
    x_held, y_held = ds.heldout.tensors
    warnings = learned_nothing(predict(model, x_held, device=ctx.device).numpy(), y_held.numpy(), ds.labels)
    final = out / "final.pt"
    if ctx.is_main:
        save_checkpoint(final, model, extra={**meta, "kind": "final", "history": history, "heldout_top1": top1,
                                             "warnings": warnings})
    model.to("cpu").eval()
    return TrainResult(final, model, top1, config.epochs, time.perf_counter() - start, history, ds.labels, warnings)


def _fit(model, optimizer, ds, config, ctx, history, meta, progress) -> None:
    from tqdm.auto import tqdm

    sampler = DistributedSampler(ds.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=config.seed, drop_last=True)
    steps = max(1, len(sampler) // config.batch_size)
    total = steps * config.epochs
    net = distributed.wrap(model, ctx)
    with tqdm(total=total, initial=len(history) * steps, disable=not (progress and ctx.is_main),
              desc=f"train {config.model}", unit="step", dynamic_ncols=True) as bar:
        for epoch in range(len(history), config.epochs):
            stats = _epoch(net, model, optimizer, ds, sampler, epoch, steps, total, config, ctx, bar)
            history.append(stats)
            distributed.average_bn_stats(model, ctx)
            if ctx.is_main:
                save_checkpoint(Path(config.out_dir) / "last.pt", model, extra={
                    **meta, "kind": "train-state", "epoch": epoch + 1, "optimizer": optimizer.state_dict(),
                    "rng": {"torch": torch.get_rng_state()}, "history": history})


def _epoch(net, model, optimizer, ds, sampler, epoch, steps, total, config, ctx, bar) -> dict:
    t0 = time.perf_counter()
    sampler.set_epoch(epoch)
    order = torch.tensor(list(iter(sampler)), dtype=torch.long)
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch * 7919 + ctx.rank)
    x_all, y_all = ds.train.tensors
    model.train()
    loss_sum = correct = seen = 0.0
    for i in range(steps):
        it = epoch * steps + i
        lr = 0.5 * config.lr * (1 + math.cos(math.pi * it / total))
        for group in optimizer.param_groups:
            group["lr"] = lr
        set_progress(model, it / total)
        idx = order[i * config.batch_size:(i + 1) * config.batch_size]
        x = augment(x_all[idx], gen, ds.mirror_ok) if config.augment else x_all[idx]
        x, y = x.to(ctx.device), y_all[idx].to(ctx.device)
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        if config.group_lasso:
            loss = loss + config.group_lasso * group_lasso(model).to(loss.device)
        value = float(loss.detach())
        if not math.isfinite(value):  # before the step: last.pt keeps the last good weights
            raise EdgecnError(f"training diverged at epoch {epoch + 1}, step {i + 1}: the loss is {value}",
                              f"lower the learning rate (--lr {config.lr:g}; try {config.lr / 10:g})"
                              + (f" or --group-lasso ({config.group_lasso:g})" if config.group_lasso else "")
                              + ", then start afresh with --overwrite or resume from the last epoch with --resume")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += value * len(y)
        correct += float((logits.argmax(1) == y).sum())
        seen += len(y)
        stage = condensing_stage_of(model)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{lr:.4f}",
                        stage=stage, refresh=False)
    loss_sum, correct, seen = distributed.all_sum([loss_sum, correct, seen], ctx)
    return {"epoch": epoch + 1, "loss": loss_sum / seen, "train_top1": correct / seen, "lr": lr,
            "stage": condensing_stage_of(model), "seconds": time.perf_counter() - t0}


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


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 256, device=None) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for all of ``x``, on CPU."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def evaluate(model: torch.nn.Module, data, batch_size: int = 256, device=None) -> float:
    """Top-1 accuracy of ``model`` on a ``(x, y)`` TensorDataset."""
    x, y = data.tensors
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x, batch_size, device).argmax(1) == y).float().mean())


def _input_size(config: TrainConfig) -> int:
    if config.input_size is not None:
        return config.input_size
    from edgecn.models import MODELS
    from edgecn.train.data import default_input_size

    return default_input_size(config.data, MODELS.get(config.model).input_size)


def _check_out_dir(out: Path, config: TrainConfig) -> None:
    taken = [p.name for p in (out / "last.pt", out / "final.pt") if p.exists()]
    if config.resume and not (out / "last.pt").exists():
        raise EdgecnError(f"nothing to resume: {str(out / 'last.pt')!r} does not exist",
                          "drop --resume to start a new run, or pass the --out of the run to continue")
    if taken and not (config.resume or config.overwrite):
        raise EdgecnError(f"{str(out)!r} already holds a run ({', '.join(taken)})",
                          "pass --resume to continue it, --overwrite to start afresh, or choose another --out")


def _restore(path: Path, model, config: TrainConfig, ctx) -> dict:
    payload = read_checkpoint(path)
    extra = payload.get("extra", {})
    saved = extra.get("config", {})
    if extra.get("kind") != "train-state" or payload["config"].get("name") != config.model:
        raise EdgecnError(f"{str(path)!r} is not a training state of model {config.model!r}",
                          "resume with the --model (and other options) of the run that wrote it")
    diff = [f"{k}={saved.get(k)!r}" for k in RESULT_FIELDS if saved.get(k) != config.to_dict()[k]]
    if extra.get("world_size", 1) != ctx.world_size:
        diff.append(f"processes={extra.get('world_size')}")
    if diff:
        raise EdgecnError(f"{str(path)!r} was written with different options ({', '.join(diff)})",
                          "resume with the same options, or start a new run with another --out")
    model.load_state_dict(payload["state_dict"])
    torch.set_rng_state(extra["rng"]["torch"])
    return extra
