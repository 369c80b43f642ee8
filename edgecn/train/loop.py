"""The training loop: the family's solver, per-iteration cosine LR, CondenseNet's condensing schedule.

``set_progress(model, iterations_done / total)`` runs before every step: the C-1 condensing
stages happen over the first half of training, the optimisation stage over the second.
Runs are reproducible on CPU: weights come from the seed, the data order and augmentation
of epoch ``e`` are functions of (seed, e) (with loader workers too), and ``last.pt`` holds the
optimiser, RNG state and history, so a resumed run ends bit-identical to one that was never
interrupted. After every epoch the held-out split is scored; ``best.pt`` keeps the weights of
the best epoch among those whose model is fully condensed (so it condenses like ``final.pt``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from edgecn import metrics
from edgecn.checkpoint import fit_state, read_checkpoint, save_checkpoint
from edgecn.condense import condensing_stage_of, group_lasso, set_progress
from edgecn.errors import EdgecnError
from edgecn.fileio import check_size_limit, claim_folder
from edgecn.runner.evaluate import learned_nothing
from edgecn.train import distributed, resume
from edgecn.train.config import RESULT_FIELDS, TrainConfig
from edgecn.train.guard import DivergenceGuard, diverged
from edgecn.train.loader import HeldoutBatches, training_batches
from edgecn.train.recipes import augmentation_for


@dataclasses.dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        checkpoint: the final checkpoint (``out_dir/final.pt``).
        model: the trained model (training form, eval mode, on CPU).
        heldout_top1: top-1 accuracy on the held-out split, in percent.
        epochs: epochs trained in total (including those before a resume).
        seconds: wall time of this call.
        history: one dict per epoch (loss, train_top1, heldout_top1, heldout_top5, lr, stage,
            seconds, images_per_s, loader_wait, condensed).
        labels: class names.
        warnings: what makes the result useless (top-1 at chance, one answer for every input).
        heldout_top5: top-5 accuracy in percent (None with 5 classes or fewer).
        best: ``out_dir/best.pt``, the weights of the epoch with the best held-out top-1 among
            epochs whose model is fully condensed; None when no epoch qualified.
        best_epoch: that epoch (1-based); ``best_top1`` its held-out top-1.
    """

    checkpoint: Path
    model: torch.nn.Module
    heldout_top1: float
    epochs: int
    seconds: float
    history: list[dict]
    labels: list[str]
    warnings: list[str] = dataclasses.field(default_factory=list)
    heldout_top5: float | None = None
    best: Path | None = None
    best_epoch: int | None = None
    best_top1: float | None = None

    def to_dict(self) -> dict:
        return {"checkpoint": str(self.checkpoint), "heldout_top1": self.heldout_top1,
                "heldout_top5": self.heldout_top5, "epochs": self.epochs, "seconds": self.seconds,
                "best": None if self.best is None else str(self.best), "best_epoch": self.best_epoch,
                "best_top1": self.best_top1, "labels": self.labels, "history": self.history,
                "warnings": self.warnings}


@dataclasses.dataclass(frozen=True)
class Precision:
    """How the forward pass runs: autocast dtype (None: fp32) and memory format."""

    name: str
    dtype: torch.dtype | None
    channels_last: bool

    @staticmethod
    def resolve(config: TrainConfig, device: torch.device) -> Precision:
        name = config.precision
        if name == "auto":
            name = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        # NHWC by default: measured 1.4-2.2x faster per fp32 training step on an x86 CPU (condensenet-light,
        # -86 at 32x32, -74-c8 at 224x224) and 1.35x with bf16 on an H200 (condensenet-74-c8 at 224x224).
        channels_last = True if config.channels_last is None else bool(config.channels_last)
        return Precision(name, dtype, channels_last)

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.data``; under torchrun, data-parallel over all ranks.

    Args:
        config: the run.
        progress: show a progress bar and one line per epoch (rank 0 only).

    Raises:
        EdgecnError: bad data, an out_dir that already holds a run, or a mismatched resume.
    """
    check_size_limit(16 << 20, "edgecn train")  # data loaders and libraries need temporary files too
    ctx = distributed.setup()
    # One writer per run folder: a second `train` into the same --out is refused, not interleaved.
    claim = claim_folder(config.out_dir, "training run") if ctx.is_main else contextlib.nullcontext()
    with claim:
        result = _run(config, ctx, progress)
    distributed.teardown(ctx)
    return result


def _run(config: TrainConfig, ctx: distributed.Context, progress: bool) -> TrainResult:
    from edgecn.models import check_input_size, create_model
    from edgecn.train.data import load_dataset

    start = time.perf_counter()
    out = Path(config.out_dir)
    _check_out_dir(out, config)
    size = config.resolved_input_size()
    ds = load_dataset(config.data, size, config.max_in_memory_mb)
    torch.manual_seed(config.seed)
    model = create_model(config.model, num_classes=len(ds.labels), input_size=size, **config.overrides)
    check_input_size(model, size)
    state = _restore(out / "last.pt", model, config, ctx) if config.resume else None
    precision = Precision.resolve(config, ctx.device)
    model.to(ctx.device, memory_format=precision.memory_format)
    optimizer = _optimizer(model, config)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=precision.dtype == torch.float16)
    if state is not None:
        resume.load_optimizer(optimizer, state.get("optimizer"), state["where"])
        if resume.check_scaler(scaler, state.get("scaler"), state["where"]):
            scaler.load_state_dict(state["scaler"])
    history = list(state["history"]) if state else []
    batches = training_batches(ds, config, ctx)
    meta = {"labels": ds.labels, "normalize": ds.normalize, "dataset": ds.name, "config": config.to_dict(),
            "world_size": ctx.world_size, "precision": precision.name, "channels_last": precision.channels_last,
            "augmentation": augmentation_for(size) if config.augment else None, "streamed": ds.streamed,
            "recipe": _recipe_record(optimizer, config, size)}
    heldout = HeldoutBatches(ds.heldout, 256, ctx, batches.workers, shard=True)  # workers kept between epochs
    _fit(model, optimizer, scaler, precision, ds, batches, heldout, config, ctx, history, meta, progress)
    set_progress(model, 1.0)  # a run too short to reach the optimisation stage still ends condensable
    model.to(memory_format=torch.contiguous_format)
    everything = heldout if ctx.world_size == 1 else HeldoutBatches(ds.heldout, 256, ctx, batches.workers, shard=False)
    logits, y_held = _logits(model, everything, ctx.device, len(ds.labels))
    top1, top5 = _topk(logits, y_held)
    warnings = learned_nothing(logits.numpy(), y_held.numpy(), ds.labels)
    final = out / "final.pt"
    if ctx.is_main:
        save_checkpoint(final, model, extra={**meta, "kind": "final", "history": history, "heldout_top1": top1,
                                             "heldout_top5": top5, "warnings": warnings})
    model.to("cpu").eval()
    best = _best(history)
    return TrainResult(final, model, top1, config.epochs, time.perf_counter() - start, history, ds.labels, warnings,
                       heldout_top5=top5, best=(out / "best.pt") if best else None,
                       best_epoch=best["epoch"] if best else None, best_top1=best["heldout_top1"] if best else None)


def _recipe_record(optimizer, config: TrainConfig, size: int) -> dict:
    """What the recipe derived beyond the config's own fields, kept in every checkpoint."""
    from edgecn.train.recipes import CROP_SCALE

    scale = min(group["lr_scale"] for group in optimizer.param_groups)  # the classifier's, when it has its own
    crops = list(CROP_SCALE) if config.augment and augmentation_for(size) == "random-resized-crop" else None
    return {"scale": config.recipe_scale(), "classifier_lr_scale": scale, "crop_area": crops}


def _optimizer(model, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, or SGD with the classifier of a wide model at its reduced rate (``recipes.classifier_lr_scale``).

    Each parameter group carries ``lr_scale``: the schedule sets its rate to ``lr_scale`` x the step's rate.
    """
    if config.optimizer == "adamw":
        return torch.optim.AdamW([{"params": list(model.parameters()), "lr_scale": 1.0}], lr=config.lr,
                                 weight_decay=config.weight_decay)
    from edgecn.train.recipes import classifier_lr_scale

    head, scale = classifier_lr_scale(model)
    ids = {id(p) for p in head}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids], "lr_scale": 1.0}]
    if head:
        groups.append({"params": head, "lr_scale": scale})
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True,
                           weight_decay=config.weight_decay)


def learning_rate(config: TrainConfig, it: int, total: int, steps: int) -> float:
    """Linear warm-up over ``warmup_epochs``, times cosine annealing over the whole run."""
    lr = 0.5 * config.lr * (1 + math.cos(math.pi * it / total))
    warm = config.warmup_epochs * steps
    return lr * min(1.0, (it + 1) / warm) if warm > 0 else lr


def _fit(model, optimizer, scaler, precision, ds, batches, heldout, config, ctx, history, meta, progress) -> None:
    from tqdm.auto import tqdm

    total = batches.steps * config.epochs
    net = distributed.wrap(model, ctx)
    if config.compile:
        net = torch.compile(net)
    out = Path(config.out_dir)
    best = _best(history)
    show = progress and ctx.is_main
    guard = DivergenceGuard(len(ds.labels), batches.steps)
    with tqdm(total=total, initial=len(history) * batches.steps, disable=not show,
              desc=f"train {config.model}", unit="step", dynamic_ncols=True) as bar:
        for epoch in range(len(history), config.epochs):
            stats = _epoch(net, model, optimizer, scaler, precision, batches, epoch, total, config, ctx, bar, guard,
                           saved_epochs=len(history))
            distributed.average_bn_stats(model, ctx)
            logits, y = _logits(model, heldout, ctx.device, len(ds.labels))
            hit1, hit5, seen = distributed.all_sum(_correct(logits, y), ctx)
            stats["heldout_top1"] = metrics.percent(hit1, seen)
            stats["heldout_top5"] = metrics.percent(hit5, seen) if len(ds.labels) > 5 else None
            stats["condensed"] = fully_condensed(model)
            history.append(stats)
            if ctx.is_main:
                if stats["condensed"] and (best is None or stats["heldout_top1"] > best["heldout_top1"]):
                    best = stats
                    save_checkpoint(out / "best.pt", model, extra={
                        **meta, "kind": "best", "epoch": epoch + 1, "heldout_top1": stats["heldout_top1"],
                        "heldout_top5": stats["heldout_top5"], "history": history})
                save_checkpoint(out / "last.pt", model, extra={
                    **meta, "kind": "train-state", "epoch": epoch + 1, "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(), "rng": {"torch": torch.get_rng_state()}, "history": history})
            if show:
                bar.write(epoch_line(stats, config.epochs), file=sys.stderr)  # stdout is the result (--json)


def epoch_line(s: dict, epochs: int) -> str:
    """One readable line per epoch: loss, top-1/top-5, throughput, and the loader's share of it."""
    top5 = f"  top-5 {s['heldout_top5']:.2f}%" if s.get("heldout_top5") is not None else ""
    return (f"epoch {s['epoch']}/{epochs}: loss {s['loss']:.4f}  train top-1 {s['train_top1']:.2f}%  "
            f"held-out top-1 {s['heldout_top1']:.2f}%{top5}  {s['images_per_s']:.0f} img/s  "
            f"waiting for data {s['loader_wait'] * 100:.0f}%")


def _epoch(net, model, optimizer, scaler, precision, batches, epoch, total, config, ctx, bar, guard, saved_epochs) -> dict:
    t0 = time.perf_counter()
    model.train()
    loss_sum = correct = seen = 0.0
    steps = batches.steps
    lr = learning_rate(config, epoch * steps, total, steps)
    for i, (x, y) in enumerate(batches.epoch(epoch)):
        it = epoch * steps + i
        lr = learning_rate(config, it, total, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        set_progress(model, it / total)

        def check(loss: float, step: int = i) -> None:  # before the weights change: last.pt stays good
            found = guard.verdict(loss)
            if ctx.distributed and all_sum_flag(found is not None, ctx) and found is None:
                found = ("another process's loss left the safe range", loss)
            if found is not None:
                raise diverged(found[0], found[1], config, epoch, step, steps, _default_lr(config), saved_epochs)

        value, hits = train_step(net, model, optimizer, scaler, precision, x, y, config.group_lasso, ctx.device,
                                 check=check)
        loss_sum += value * len(y)
        correct += hits
        seen += len(y)
        bar.update(1)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{metrics.percent(correct, seen):.1f}%", lr=f"{lr:.4f}",
                        stage=condensing_stage_of(model), img_s=f"{seen * ctx.world_size / elapsed:.0f}",
                        wait=f"{batches.waited / elapsed:.0%}", refresh=False)
    elapsed = time.perf_counter() - t0
    loss_sum, correct, seen = distributed.all_sum([loss_sum, correct, seen], ctx)
    return {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1), "train_top1": metrics.percent(correct, seen) if seen else 0.0, "lr": lr,
            "stage": condensing_stage_of(model), "seconds": elapsed, "images_per_s": seen / elapsed,
            "loader_wait": batches.waited / elapsed}


def train_step(net, model, optimizer, scaler, precision: Precision, x, y, lasso: float, device, check=None):
    """One optimiser step on a batch; returns (loss value, correct top-1 answers in the batch).

    ``net`` is what runs the forward pass (``model`` itself, or its DDP / compiled wrapper);
    ``model`` is what the group-lasso term reads. ``check`` sees the cross-entropy (or a
    non-finite total loss) before the weights change and may raise to stop the run; without it,
    a non-finite loss raises FloatingPointError, also before the weights change.
    """
    x = x.to(device, memory_format=precision.memory_format, non_blocking=True)
    y = y.to(device, non_blocking=True)
    with precision.autocast(device):
        logits = net(x)
    # The loss, the group-lasso term and the weights stay float32 whatever the forward ran in.
    ce = F.cross_entropy(logits.float(), y)
    loss = ce + lasso * group_lasso(model).to(ce.device) if lasso else ce
    value = float(loss.detach())
    if check is not None:
        check(float(ce.detach()) if math.isfinite(value) else value)
    if not math.isfinite(value):
        raise FloatingPointError(value)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # fp16: scaled, and a step with inf/nan gradients is skipped
    scaler.step(optimizer)
    scaler.update()
    return value, metrics.topk_hits(logits.detach().float().cpu(), y.cpu(), 1)


def all_sum_flag(flag: bool, ctx: distributed.Context) -> bool:
    """True when ``flag`` is set on any process."""
    return distributed.all_sum([1.0 if flag else 0.0], ctx)[0] > 0


def _default_lr(config: TrainConfig) -> float:
    return config.solver().lr_for(config.batch_size)


def _best(history: list[dict]) -> dict | None:
    """The epoch with the best held-out top-1 among fully condensed ones (the first on ties)."""
    done = [h for h in history if h.get("condensed") and h.get("heldout_top1") is not None]
    return max(done, key=lambda h: h["heldout_top1"]) if done else None


def fully_condensed(model: torch.nn.Module) -> bool:
    """True when every learned group conv is in its optimisation stage (or there are none)."""
    return all(int(m.stage) >= m.condense_factor - 1 for m in model.modules()
               if hasattr(m, "stage") and hasattr(m, "condense_factor"))


@torch.no_grad()
def _logits(model, batches: HeldoutBatches, device, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32, CPU) and labels of a held-out set (or share of it)."""
    was_training = model.training
    model.eval()
    outs, labels = [], []
    try:
        for x, y in batches:
            outs.append(model(x.to(device)).float().cpu())
            labels.append(y)
    finally:
        model.train(was_training)
    if not outs:
        return torch.empty(0, classes), torch.empty(0, dtype=torch.long)
    return torch.cat(outs), torch.cat(labels)


def _correct(logits: torch.Tensor, y: torch.Tensor) -> list[float]:
    """[top-1 hits, top-5 hits, images] (hits, so that processes can sum them)."""
    if len(y) == 0:
        return [0.0, 0.0, 0.0]
    return [float(metrics.topk_hits(logits, y, 1)), float(metrics.topk_hits(logits, y, 5)), float(len(y))]


def _topk(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float | None]:
    """Top-1 and top-5 in percent (NaN and None for no images)."""
    if len(y) == 0:
        return float("nan"), None
    return metrics.top1(logits, y), metrics.top5(logits, y)


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
    """Top-1 accuracy of ``model`` on a ``(x, y)`` TensorDataset, in percent (NaN when empty)."""
    x, y = data.tensors
    if len(y) == 0:
        return float("nan")
    return metrics.top1(predict(model, x, batch_size, device), y)


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
    saved = extra.get("config")
    if extra.get("kind") != "train-state" or payload["config"].get("name") != config.model or not isinstance(saved, dict):
        raise EdgecnError(f"{str(path)!r} is not a training state of model {config.model!r}",
                          "resume with the --model (and other options) of the run that wrote it")
    diff = [f"{k}={saved.get(k)!r}" for k in RESULT_FIELDS if saved.get(k) != config.to_dict()[k]]
    if extra.get("world_size", 1) != ctx.world_size:
        diff.append(f"processes={extra.get('world_size')}")
    if diff:
        raise EdgecnError(f"{str(path)!r} was written with different options ({', '.join(diff)})",
                          "resume with the same options, or start a new run with another --out")
    where = f"training state {str(path)!r}"
    rng = resume.check_rng(extra, where)
    resume.check_history(extra, config.epochs, where)
    fit_state(model, payload["state_dict"], where)
    torch.set_rng_state(rng)
    return {**extra, "where": where}
