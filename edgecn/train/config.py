"""``TrainConfig``: everything that defines a training run, validated once."""

from __future__ import annotations

import dataclasses
from typing import Any

from edgecn.errors import EdgecnError

# Fields that change the result: a resumed run must match the run it continues on all of them.
RESULT_FIELDS = ("model", "data", "input_size", "epochs", "batch_size", "lr", "seed", "group_lasso",
                 "overrides", "augment", "momentum", "weight_decay", "optimizer", "warmup_epochs", "precision",
                 "max_in_memory_mb")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run.

    Attributes:
        model: registry name (see ``edgecn models``).
        data: ``"digits"`` (embedded) or a local folder (CIFAR python layout or ImageFolder).
        input_size: image side in pixels; ``None``: 16 for the 8x8 digits, else the model's own
            (32 for CIFAR-style models).
        epochs: passes over the training split; ``None``: the family's (12; 30 for SqueezeNet).
            The condensing stages take the first half.
        batch_size: images per step and per process; ``None``: the family's (64; 32 for
            ImageNet-style models or inputs, see ``edgecn.train.recipes``).
        lr: peak learning rate of the per-iteration cosine schedule; ``None``: the model family's
            at this batch size (``edgecn.train.recipes``: for CondenseNet and DenseNet, SGD at 0.1
            per 64 images for CIFAR-style models and inputs, 0.05 per 32 when either the model
            or the input is ImageNet-style, above 96 px a side; AdamW at 1e-3 for SqueezeNet).
        seed: seeds weights, data order and augmentation; same seed, same result.
        out_dir: where ``last.pt`` (every epoch) and ``final.pt`` go.
        resume: continue from ``out_dir/last.pt``.
        overwrite: allow starting afresh in an ``out_dir`` that already holds a run.
        group_lasso: weight of the group-lasso term that steers which inputs each group keeps.
        overrides: model options, e.g. ``{"groups": 4, "condense_factor": 4}``.
        augment: random shifts (and flips where the data allows) of training images.
        momentum: Nesterov momentum of SGD.
        weight_decay: weight decay (L2 for SGD, decoupled for AdamW); ``None``: the family's.
        optimizer: ``"sgd"`` or ``"adamw"``; ``None``: the family's.
        warmup_epochs: linear learning-rate warm-up, in epochs; ``None``: the family's (1 for
            ImageNet-style models or inputs and for SqueezeNet, else 0).
        precision: ``"auto"`` (bf16 autocast on a CUDA GPU that has it, else fp32), ``"fp32"``,
            ``"bf16"`` or ``"fp16"`` (autocast; fp16 with a gradient scaler). Weights, condensing
            masks and the group-lasso term stay float32 in every mode.
        channels_last: NHWC memory format; ``None``: on (faster on CPUs and GPUs alike).
        compile: run the model through ``torch.compile``.
        workers: loader worker processes for streamed data; ``None``: the cores left, up to 8.
            Results do not depend on it (augmentation is seeded per image).
        max_in_memory_mb: ImageFolder trees whose decoded images would take more are streamed.
    """

    model: str = "condensenet-light"
    data: str = "digits"
    input_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    out_dir: str = "runs/train"
    resume: bool = False
    overwrite: bool = False
    group_lasso: float = 1e-5
    overrides: dict = dataclasses.field(default_factory=dict)
    augment: bool = True
    momentum: float = 0.9
    weight_decay: float | None = None
    optimizer: str | None = None
    warmup_epochs: float | None = None
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    workers: int | None = None
    max_in_memory_mb: int = 2048

    def __post_init__(self):
        from edgecn.models import MODELS
        from edgecn.train.recipes import OPTIMIZERS

        object.__setattr__(self, "model", MODELS.canonical(self.model))
        if self.input_size is not None:
            _at_least("input size", self.input_size, 8)
        solver = self.solver()
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", solver.batch_size)
        _at_least("batch size", self.batch_size, 2, "batch norm needs at least two images per step")
        if self.lr is None:
            object.__setattr__(self, "lr", solver.lr_for(self.batch_size))
        for name in ("weight_decay", "optimizer", "warmup_epochs", "epochs"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(solver, name))
        if self.optimizer not in OPTIMIZERS:
            raise EdgecnError(f"unknown optimizer {self.optimizer!r}", f"use one of {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise EdgecnError(f"unknown precision {self.precision!r}", f"use one of {', '.join(PRECISIONS)}")
        if self.workers is not None:
            _at_least("workers", self.workers, 0)
        _at_least("max in-memory size", self.max_in_memory_mb, 0)
        object.__setattr__(self, "out_dir", str(self.out_dir))
        object.__setattr__(self, "overrides", dict(self.overrides or {}))
        _at_least("epochs", self.epochs, 1)
        _at_least("seed", self.seed, 0)
        for name in ("lr", "group_lasso", "momentum", "weight_decay", "warmup_epochs"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or (name == "lr" and value == 0):
                raise EdgecnError(f"{name.replace('_', ' ')} must be a {'positive' if name == 'lr' else 'non-negative'} number (got {value!r})",
                                  f"pass a valid --{name.replace('_', '-')}")
        if self.resume and self.overwrite:
            raise EdgecnError("resume and overwrite both requested", "pass only one of --resume and --overwrite")

    def solver(self):
        """The family's recipe (``edgecn.train.recipes.Solver``) for this model and input size.

        The ImageNet-style recipe when the model was designed for large inputs or trains at one:
        an ImageNet variant trained on small images keeps its wide classifier input (2,064 features
        for CondenseNet-74), which is what needs the lower rate.
        """
        from edgecn.models import MODELS
        from edgecn.train.recipes import solver_for

        return solver_for(MODELS.get(self.model).family, self.recipe_scale())

    def recipe_scale(self) -> str:
        """``"large"`` (ImageNet-style model or input) or ``"small"``: which of the family's recipes applies."""
        from edgecn.models import MODELS
        from edgecn.train.recipes import scale_of

        return scale_of(max(self.resolved_input_size(), MODELS.get(self.model).input_size))

    def resolved_input_size(self) -> int:
        """``input_size``, or the side a run trains at when none is given.

        16 for the 8x8 digits (raised to the smallest of 32, 64 the model can run at: SqueezeNet
        pools 16 away), else the model's own.
        """
        if self.input_size is not None:
            return self.input_size
        cached = self.__dict__.get("_input_size")
        if cached is not None:
            return cached
        from edgecn.models import MODELS, check_input_size, create_model
        from edgecn.train.data import DIGITS_INPUT_SIZE, default_input_size

        size = default_input_size(self.data, MODELS.get(self.model).input_size)
        if self.data == "digits":
            for size in (DIGITS_INPUT_SIZE, 32, 64):
                try:
                    check_input_size(create_model(self.model, num_classes=10, **(self.overrides or {})), size)
                    break
                except EdgecnError:
                    continue
        object.__setattr__(self, "_input_size", size)
        return size

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (stored in checkpoints, which load weights-only)."""
        return dataclasses.asdict(self)


def _at_least(what: str, value, low: int, why: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise EdgecnError(f"{what} must be an integer of at least {low} (got {value!r})",
                          why or f"pass a valid {what}")
