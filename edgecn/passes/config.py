"""The lowering configuration: which form each target-unfriendly construct is rewritten to."""

from __future__ import annotations

import dataclasses

from edgecn.errors import EdgecnError

INDEX_CHOICES = ("auto", "gather", "selection_conv", "dense", "slices")
GROUP_CONV_CHOICES = ("auto", "native", "split", "dense")
SHUFFLE_CHOICES = ("auto", "fold", "keep")


@dataclasses.dataclass(frozen=True)
class LoweringConfig:
    """How ``edgecn.passes.rewrite`` lowers a model for one target.

    Attributes:
        index: channel gathers (index layers): ``"gather"`` keeps them, ``"selection_conv"``
            makes a 1x1 conv with a 0/1 matrix, ``"dense"`` folds gather + BN/ReLU + conv into
            one dense conv over the un-gathered input, ``"slices"`` makes slices + concat when
            the index is a few contiguous ranges, ``"auto"`` picks per layer.
        group_conv: grouped convolutions: ``"native"``, ``"split"`` (per-group convs + concat),
            ``"dense"`` (one block-diagonal dense conv) or ``"auto"``.
        shuffle: channel shuffles: ``"fold"`` removes every one (folded into a neighbouring
            dense conv when possible, else lowered another exact way), ``"keep"``, ``"auto"``.
        fold_bn: fold a BatchNorm into the conv before it when that conv feeds only the BN.
        explicit_multi_consumer_bn: write a BatchNorm whose input conv has other consumers as
            a depthwise 1x1 conv, so int8 preparation cannot fold it into that conv.
        max_slices: most contiguous ranges an index may have for ``"slices"``.
        tolerance: largest allowed difference between the input and the rewritten model's
            outputs on the example input, relative to the largest output magnitude (>= 1).
    """

    index: str = "auto"
    group_conv: str = "auto"
    shuffle: str = "auto"
    fold_bn: bool = True
    explicit_multi_consumer_bn: bool = True
    max_slices: int = 8
    tolerance: float = 1e-5

    def __post_init__(self):
        for field, choices in (("index", INDEX_CHOICES), ("group_conv", GROUP_CONV_CHOICES),
                               ("shuffle", SHUFFLE_CHOICES)):
            value = getattr(self, field)
            if value not in choices:
                raise EdgecnError(f"unknown {field} lowering {value!r}", f"use one of {', '.join(choices)}")
        for field in ("fold_bn", "explicit_multi_consumer_bn"):
            if not isinstance(getattr(self, field), bool):
                raise EdgecnError(f"{field} must be true or false (got {getattr(self, field)!r})",
                                  f"write {field} = true or {field} = false")
        if not isinstance(self.max_slices, int) or self.max_slices < 1:
            raise EdgecnError(f"max_slices must be a positive integer (got {self.max_slices!r})",
                              "use a small count such as 8")
        if not 0 < self.tolerance < 1e-2:
            raise EdgecnError(f"tolerance {self.tolerance!r} is out of range",
                              "use a small positive number such as 1e-5")

    @classmethod
    def from_dict(cls, data: dict) -> "LoweringConfig":
        """Build from a TOML table; unknown keys are an error naming the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise EdgecnError(f"unknown lowering option(s) {', '.join(unknown)}",
                              f"use only {', '.join(sorted(names))}")
        return cls(**data)
