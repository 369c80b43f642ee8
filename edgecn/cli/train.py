"""`edgecn train`: train a model (single process, or data-parallel under torchrun)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from edgecn import environment
from edgecn.cli import subcommand
from edgecn.errors import EdgecnError
from edgecn.limits import number


@subcommand("train", help="train a model on the embedded digits, a CIFAR folder or an ImageFolder tree")
def configure(p):
    from edgecn.train.config import PRECISIONS
    from edgecn.train.config import TrainConfig as _C  # light: no torch import at parse time
    from edgecn.train.recipes import OPTIMIZERS

    d = _C.__dataclass_fields__
    p.epilog = ("Writes OUT/last.pt every epoch, OUT/best.pt when an epoch scores the best held-out top-1 so far "
                "(CondenseNet: among fully condensed epochs), and OUT/final.pt at the end. The condensing stages take the "
                "first half of the epochs. Data-parallel: `torchrun --nproc_per_node N -m edgecn train ...` "
                "(--batch-size is per process).")
    p.add_argument("--model", default=d["model"].default, help="model name from `edgecn models` (default: %(default)s)")
    p.add_argument("--data", default=d["data"].default,
                   help="'digits' (embedded, scikit-learn's handwritten digits), a CIFAR-10/100 python folder, "
                        "or an ImageFolder tree (default: %(default)s)")
    p.add_argument("--input-size", type=number(int, 8, 4096), default=None, help="image side in pixels (default: 16 for digits, else the model's own, e.g. 32 for condensenet-light)")
    p.add_argument("--epochs", type=number(int, 1, 10_000), default=None,
                   help="epochs (default: the model family's: 12, or 30 for SqueezeNet)")
    p.add_argument("--batch-size", type=number(int, 1, 65_536), default=None,
                   help="images per step and process (default: the family's: 64, or 32 for ImageNet-style models or inputs over 96 px)")
    p.add_argument("--lr", type=number(float, 0, 10, lo_open=True), default=None,
                   help="peak learning rate, cosine-annealed per step (default: the family's, scaled with "
                        "--batch-size: SGD at 0.1 per 64 images for CIFAR-style CondenseNet and DenseNet, 0.05 per 32 "
                        "for ImageNet-style models or inputs over 96 px; AdamW at 0.001 for SqueezeNet)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default: the family's")
    p.add_argument("--weight-decay", type=number(float, 0, 1), default=None, help="default: the family's (1e-4)")
    p.add_argument("--warmup-epochs", type=number(float, 0, 10_000), default=None,
                   help="linear learning-rate warm-up in epochs (default: the family's: 1 for ImageNet-style models "
                        "or inputs and for SqueezeNet, else 0)")
    p.add_argument("--seed", type=number(int, 0, 2**32 - 1), default=d["seed"].default, help="seed of weights, data order, augmentation (default: %(default)s)")
    p.add_argument("--group-lasso", type=number(float, 0, 1000), default=d["group_lasso"].default,
                   help="weight of the group-lasso term (default: %(default)s)")
    p.add_argument("--no-augment", action="store_true",
                   help="train without augmentation (default: random shifts and flips for inputs up to 96 px a side, "
                        "random-resized crops and flips above)")
    g = p.add_argument_group("speed (results do not depend on --workers)")
    g.add_argument("--precision", choices=PRECISIONS, default=d["precision"].default,
                   help="autocast precision: auto = bf16 on a CUDA GPU that has it, else fp32 (default: %(default)s)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format (default: on; 1.4-2.2x faster steps measured on CPU)")
    g.add_argument("--compile", action="store_true",
                   help="run the model through torch.compile (compiles again at each condensing stage: pays only "
                        "on long runs; measured 1.14x per CPU step after a 1-minute compile for condensenet-light)")
    g.add_argument("--workers", type=number(int, 0, 256), default=None,
                   help="loader worker processes for image folders too big for memory (default: free cores, up to 8)")
    g.add_argument("--max-in-memory-mb", type=number(int, 0, 10**7), default=d["max_in_memory_mb"].default,
                   help="stream an image folder from disk when its decoded images would take more (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model option, e.g. --set groups=8 --set condense_factor=8 (repeatable)")
    p.add_argument("--out", default=None, help="output folder (default: runs/MODEL-DATA)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if --out already holds a run")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args):
    from edgecn.train import TrainConfig, train

    config = TrainConfig(model=args.model, data=args.data, input_size=args.input_size, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, seed=args.seed, group_lasso=args.group_lasso,
                         augment=not args.no_augment, overrides=parse_overrides(args.overrides),
                         out_dir=args.out or default_out(args.model, args.data), resume=args.resume,
                         overwrite=args.overwrite, optimizer=args.optimizer, weight_decay=args.weight_decay,
                         warmup_epochs=args.warmup_epochs, precision=args.precision,
                         channels_last=args.channels_last, compile=args.compile, workers=args.workers,
                         max_in_memory_mb=args.max_in_memory_mb)
    rank = environment.distributed()[0]  # checked before any work: a wrong one fails here, in one line
    if not args.quiet and rank == 0:
        print(recipe_line(config), file=sys.stderr)
    result = train(config, progress=not args.quiet)
    if rank != 0:
        return 0
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        top5 = "" if result.heldout_top5 is None else f", top-5 {result.heldout_top5:.2f}%"
        print(f"held-out top-1 {result.heldout_top1:.2f}%{top5}  ({len(result.labels)} classes, "
              f"{result.epochs} epochs, {result.seconds:.1f} s)\ncheckpoint: {result.checkpoint}")
        if result.best is not None:
            print(f"best epoch {result.best_epoch}: held-out top-1 {result.best_top1:.2f}%  ({result.best})")
    for w in result.warnings:
        print(f"edgecn train: WARNING: {w}", file=sys.stderr)
    return 0


def recipe_line(config) -> str:
    """What the run trains with, defaults resolved: the values a diverging run's message refers to."""
    return (f"recipe: {config.model} at {config.resolved_input_size()} px, {config.optimizer} lr {config.lr:g} "
            f"(batch {config.batch_size}), warm-up {config.warmup_epochs:g} epoch(s), weight decay "
            f"{config.weight_decay:g}, {config.epochs} epochs, seed {config.seed}")


def default_out(model: str, data: str) -> str:
    tag = os.path.basename(os.path.normpath(data)) or "data"
    return os.path.join("runs", f"{model}-{tag}")


def parse_overrides(items: list[str]) -> dict:
    """``["groups=8", "bottleneck=2"]`` -> ``{"groups": 8, "bottleneck": 2}`` (JSON values, else strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EdgecnError(f"--set {item!r} is not KEY=VALUE", "write e.g. --set groups=8")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
