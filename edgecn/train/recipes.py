"""Training recipes: the solver each model family trains with, and how images are augmented.

A family's solver is what that family needs to learn from scratch with the defaults, at the
input scale it runs at (CIFAR-style or ImageNet-style); any field the user sets wins. The
default learning rate scales with the batch size from the rate the recipe was published for. Augmentation follows the input size, not the data source:
small inputs (CIFAR-style, up to ``LARGE_INPUT``) get random shifts of up to 1/8 of the side
plus flips; large inputs (ImageNet-style) get random-resized crops plus flips. Evaluation
resizes the whole image to the input side, exactly as the device runner and calibration do,
so the top-1 measured here is the top-1 a deployed artifact can reach.
"""

from __future__ import annotations

import dataclasses

LARGE_INPUT = 96
"""Inputs larger than this (pixels a side) train with random-resized crops instead of shifts."""

CROP_SCALE = (0.35, 1.0)
"""Area of a random-resized crop, as a fraction of the image.

ImageNet recipes draw from (0.08, 1) over 90+ epochs. On the short runs this tool is used for
that is too much: CondenseNet-74-c8 on digits at 112x112, 10 epochs, SGD at 0.025 per 64 images,
reached 90.8% held-out with (0.08, 1) (train top-1 72%: a crop of 8% of an 8x8 glyph holds
about 2x2 of its pixels) and 93.0% with (0.25, 1). At 224 with (0.25, 1) the training crops
stayed harder than the held-out images to the end (train top-1 83%, held-out 90%): a 10-epoch
run underfits, so the lower bound is 0.35, as lightweight-model ImageNet recipes use
(bench/results/2026-12-07-train-224.md).
"""
CROP_RATIO = (3 / 4, 4 / 3)
"""Aspect ratios of a random-resized crop (width / height)."""


@dataclasses.dataclass(frozen=True)
class Solver:
    """Optimiser settings of a family at one input scale.

    Attributes:
        optimizer: ``"sgd"`` (Nesterov momentum) or ``"adamw"``.
        lr: peak learning rate at ``reference_batch`` images per step; cosine-annealed per step
            after the warm-up.
        weight_decay: decoupled for AdamW, L2 for SGD.
        warmup_epochs: linear learning-rate warm-up from 0, in epochs (fractions allowed).
        epochs: default length of a run.
        reference_batch: the batch size ``lr`` was set for. SGD rates scale linearly with the
            batch (Goyal et al. 2017, "Accurate, large minibatch SGD"); ``None``: not scaled
            (AdamW's per-parameter step does not grow with the batch the way SGD's does).
        batch_size: the default images per step.
    """

    optimizer: str
    lr: float
    weight_decay: float
    warmup_epochs: float
    epochs: int = 12
    reference_batch: int | None = None
    batch_size: int = 64

    def lr_for(self, batch_size: int) -> float:
        """The peak rate at ``batch_size`` images per step."""
        if self.reference_batch is None:
            return self.lr
        return self.lr * batch_size / self.reference_batch


# CondenseNet's CIFAR recipe (Huang et al. 2018, and its reference code): SGD + Nesterov 0.9, lr
# 0.1 at batch 64, wd 1e-4, cosine, no warm-up. It trains CIFAR-style models as published.
#
# It does not train ImageNet-style ones. CondenseNet-74 at lr 0.1 per 64 images diverged within
# its first steps on digits (at 224, 64 and 32 px alike): logits grew from std 0.2 to 60 within 10
# steps, the first-epoch loss was 8-13 (chance: ln 10 = 2.3) and the run trained on at chance.
# The classifier is where it starts: it reads 2,064 pooled features, all positive after the last
# BN-ReLU, with a norm of about 21 per image (17.7 of it shared by every image), so one SGD step
# moves the logits by about lr * 450 per unit of gradient; with 10 classes, whose softmax
# curvature is about 100x that of ImageNet's 1000, that overshoots at lr 0.1. Half the rate per
# image (0.2 per 256, 0.05 at batch 64) after a one-epoch linear warm-up learned at 112x112
# (95.8% held-out after 10 epochs, against 93.0% at 0.025); at 224x224 it still sat at the edge:
# one seed's loss climbed from 3.1 to 5.3 as the warm-up reached 0.045. Nesterov momentum 0.9 is
# stable only below about 1.4 / curvature, and the classifier's curvature grows with the number of
# features it reads (their shared positive part: |mean f|^2 ~ 313 here, x 0.1 for the softmax of
# 10 balanced classes), which puts the bound near 0.045. So the classifier of a wide model learns
# at lr * HEAD_WIDTH / features (``classifier_lr_scale``), and the rest of the network, whose
# batch-normed convolutions do not have this curvature, at the full rate.
#
# That bound is on the step, not on the rate per image: at 0.05 per step and batch 64, 10 epochs
# of digits at 224 (22 steps an epoch) ended at 90.0% and 90.8% held-out, still climbing when
# the cosine schedule ran out. The same step at batch 32 takes twice the steps per epoch under the
# same curvature bound, which doubles the rate per image (0.4 per 256, the classifier at half of
# it) and halves the activation memory of a step at 224 (about 9 GB at batch 64 on CPU).
# (bench/results/2026-12-07-train-224.md)
_CIFAR_SGD = Solver("sgd", 0.1, 1e-4, 0.0, reference_batch=64)
_IMAGENET_SGD = Solver("sgd", 0.4, 1e-4, 1.0, reference_batch=256, batch_size=32)

SOLVERS = {
    ("condensenet", "small"): _CIFAR_SGD,
    ("condensenet", "large"): _IMAGENET_SGD,
    ("densenet", "small"): _CIFAR_SGD,
    ("densenet", "large"): _IMAGENET_SGD,
    # SqueezeNet has no batch norm and a ReLU right before global pooling: a class whose final
    # pre-activation turns negative for every image gets no gradient again. With SGD at lr 0.1 (or
    # 0.01, with or without warm-up) every class died within the first epochs on digits (loss stuck
    # at ln 10). AdamW at 1e-3 with one epoch of warm-up, plus the model's positive start for the
    # final bias, learns; without batch norm it needs more steps than the BN families (digits at
    # 32x32, shifts on: 85% after 12 epochs, 94.7% / 96.1% after 30 with seeds 0 / 1). At lr 2e-3
    # it still died: the family stays sensitive to the learning rate.
    ("squeezenet", "small"): Solver("adamw", 1e-3, 1e-4, 1.0, epochs=30),
    ("squeezenet", "large"): Solver("adamw", 1e-3, 1e-4, 1.0, epochs=30),
}
DEFAULT_SOLVERS = {"small": _CIFAR_SGD, "large": _IMAGENET_SGD}

HEAD_WIDTH = 1024
"""With SGD, a classifier reading more features than this learns at ``lr * HEAD_WIDTH / features``.

CIFAR-style models (CondenseNet-86: 800 features, -light: 240) keep the full rate;
CondenseNet-74 (2,064 features) gets about half."""
OPTIMIZERS = ("sgd", "adamw")


def classifier_lr_scale(model) -> tuple[list, float]:
    """The parameters of ``model``'s classifier (its last ``nn.Linear``) and their rate factor for SGD."""
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return [], 1.0
    head = linears[-1]
    return list(head.parameters()), min(1.0, HEAD_WIDTH / head.in_features)


def scale_of(input_size: int) -> str:
    """``"small"`` (CIFAR-style, up to ``LARGE_INPUT`` pixels a side) or ``"large"`` (ImageNet-style)."""
    return "large" if input_size > LARGE_INPUT else "small"


def solver_for(family: str, scale: str = "small") -> Solver:
    """The solver of a model family at a scale (``scale_of``; families without their own: the SGD recipes)."""
    return SOLVERS.get((family, scale), DEFAULT_SOLVERS[scale])


def augmentation_for(input_size: int) -> str:
    """``"shift-flip"`` for small inputs, ``"random-resized-crop"`` for large ones."""
    return "random-resized-crop" if scale_of(input_size) == "large" else "shift-flip"
