"""The Deep Compression settings: one frozen, validated config shared by the CLI and the API."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from edgecn.errors import EdgecnError


@dataclasses.dataclass(frozen=True)
class DeepCompressionConfig:
    """What ``deep_compress`` does (Han, Mao, Dally 2016: prune, share weights, Huffman-code).

    The defaults are what met the size and accuracy goal on SqueezeNet 1.1 (digits, 32x32,
    15.6x smaller weights, top-1 94.71% -> 95.54%): unreachable taps pruned, then each layer
    by magnitude to the sparsity its sensitivity allows (at most half, within 0.5 points)
    in three rounds of three epochs, 6-bit conv / 5-bit classifier codebooks, Adam
    fine-tuning (SGD knocked the Adam-trained model out of its minimum). 70% everywhere in
    short rounds had cost 50+ points.

    Attributes:
        sparsity: fraction of each layer's weights to prune, in [0, 1); with ``sensitivity``
            set, the most any layer is pruned. Counted over the weights that can see the
            image: unreachable kernel taps (``unreachable``) are pruned on top.
        layer_sparsity: per-layer overrides, module name (e.g. ``"features.0"``) -> sparsity.
        unreachable: also prune kernel taps that only ever multiply padding at the model's
            input size (exact: no output changes).
        sensitivity: ``None``: every layer gets ``sparsity``. A number: per-layer sparsity
            from a sensitivity scan, the largest whose top-1 drop on training images, that
            layer alone pruned without retraining, stays within this many points.
        edge_sparsity: with ``sensitivity``, the most the first conv and the classifier are
            pruned (the paper keeps both denser: they are the most sensitive).
        scan_images: training images the sensitivity scan evaluates on.
        conv_bits: codebook bits (1..8) for convolutions: at most ``2**bits`` shared values.
        fc_bits: codebook bits for linear layers and for the model's last layer (the classifier).
        layer_bits: per-layer overrides of the codebook bits.
        prune_rounds: prune/retrain rounds; round ``r`` prunes to ``sparsity * r / rounds``.
        prune_epochs: retraining epochs after each pruning round (masks fixed).
        share_epochs: epochs fine-tuning the shared centroids (and biases, BatchNorm).
        lr: learning rate for retraining.
        centroid_lr: learning rate for centroids; their gradient is a sum over a
            whole cluster, so it needs a smaller step than single weights.
        momentum: SGD momentum.
        optimizer: ``"sgd"`` or ``"adam"`` for all fine-tuning.
        weight_decay: SGD weight decay (pruned weights stay zero regardless).
        batch_size: training batch size.
        kmeans_iters: Lloyd iterations of the per-layer k-means.
        prune: run the pruning stage.
        share: run the weight-sharing stage.
        seed: seed for data order.
    """

    sparsity: float = 0.5
    layer_sparsity: Mapping[str, float] = dataclasses.field(default_factory=dict)
    unreachable: bool = True
    sensitivity: float | None = 0.5
    edge_sparsity: float = 0.5
    conv_bits: int = 6
    fc_bits: int = 5
    layer_bits: Mapping[str, int] = dataclasses.field(default_factory=dict)
    prune_rounds: int = 3
    prune_epochs: int = 3
    share_epochs: int = 2
    lr: float = 3e-4
    centroid_lr: float = 1e-5
    momentum: float = 0.9
    optimizer: str = "adam"
    weight_decay: float = 0.0
    batch_size: int = 64
    kmeans_iters: int = 50
    prune: bool = True
    share: bool = True
    scan_images: int = 512
    seed: int = 0

    def __post_init__(self):
        for name, value in [("sparsity", self.sparsity), ("edge_sparsity", self.edge_sparsity),
                            *self.layer_sparsity.items()]:
            _check_sparsity(name, value)
        for name, value in [("conv_bits", self.conv_bits), ("fc_bits", self.fc_bits), *self.layer_bits.items()]:
            _check_bits(name, value)
        if self.sensitivity is not None and (isinstance(self.sensitivity, bool) or not isinstance(
                self.sensitivity, (int, float)) or self.sensitivity < 0):
            raise EdgecnError(f"sensitivity tolerance must be a number of top-1 points >= 0 (got {self.sensitivity!r})",
                              "pass e.g. 1.0, or leave it unset for one sparsity for every layer")
        for name in ("prune_rounds", "batch_size", "kmeans_iters", "scan_images"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise EdgecnError(f"{name} must be a whole number >= 1 (got {getattr(self, name)!r})",
                                  f"set {name} to 1 or more")
        for name in ("prune_epochs", "share_epochs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise EdgecnError(f"{name} must be a whole number >= 0 (got {getattr(self, name)!r})",
                                  f"set {name} to 0 (no fine-tuning) or more")
        for name in ("lr", "centroid_lr"):
            if not getattr(self, name) > 0:
                raise EdgecnError(f"{name} must be positive (got {getattr(self, name)!r})", f"set {name} > 0, e.g. 0.01")
        if self.optimizer not in ("sgd", "adam"):
            raise EdgecnError(f"unknown optimizer {self.optimizer!r}", "use 'sgd' or 'adam'")
        # Copies, so a caller mutating its dict cannot change a frozen config.
        object.__setattr__(self, "layer_sparsity", dict(self.layer_sparsity))
        object.__setattr__(self, "layer_bits", dict(self.layer_bits))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DeepCompressionConfig":
        """Build from a mapping (e.g. a TOML table); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EdgecnError(f"unknown deep compression option(s): {', '.join(unknown)}",
                              f"use only: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "deep_compression") -> "DeepCompressionConfig":
        """Load the ``[deep_compression]`` table (or the whole file when it has none)."""
        from edgecn.limits import read_toml

        data = read_toml(path, "deep compression config")
        return cls.from_dict(data.get(table, data))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_sparsity(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise EdgecnError(f"sparsity {name}={value!r} is outside [0, 1)",
                          "give the fraction of weights to remove, e.g. 0.7 (1.0 would remove the whole layer)")


def _check_bits(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        raise EdgecnError(f"codebook bits {name}={value!r} are outside 1..8",
                          "use 1 to 8 bits per layer (the paper uses 8 for convolutions, 5 for the classifier)")
