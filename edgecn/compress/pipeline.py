"""``deep_compress``: prune, share weights, measure (Han, Mao, Dally 2016), on any plain CNN."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Subset

from edgecn.compress.config import DeepCompressionConfig
from edgecn.compress.finetune import evaluate
from edgecn.compress.pruning import compressible_layers, prune
from edgecn.compress.report import CompressionReport, measure
from edgecn.compress.sensitivity import (SCAN_SPARSITIES, choose_sparsity, overall_sparsity, sensitivity_scan,
                                         unreachable_taps)
from edgecn.compress.weight_sharing import share_weights
from edgecn.errors import EdgecnError


def layer_plan(model: nn.Module, config: DeepCompressionConfig) -> tuple[dict[str, float], dict[str, int]]:
    """Target sparsity and codebook bits of every conv/linear layer of ``model``.

    Linear layers and the last layer (the classifier of every edgecn model, a 1x1 conv in
    SqueezeNet) get ``fc_bits``; other layers ``conv_bits``; per-layer overrides win.
    """
    layers = compressible_layers(model)
    if not layers:
        raise EdgecnError("the model has no conv or linear layers to compress", "pass a CNN built by edgecn")
    unknown = sorted((set(config.layer_sparsity) | set(config.layer_bits)) - set(layers))
    if unknown:
        raise EdgecnError(f"unknown layer(s) in the compression config: {', '.join(unknown)}",
                          f"use module names of this model: {', '.join(layers)}")
    last = list(layers)[-1]
    sparsity = {name: config.layer_sparsity.get(name, config.sparsity) for name in layers}
    bits = {}
    for name, m in layers.items():
        default = config.fc_bits if isinstance(m, nn.Linear) or name == last else config.conv_bits
        bits[name] = config.layer_bits.get(name, default)
    return sparsity, bits


def reachable_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Layer name -> mask of the weights that can see the image at the model's input size."""
    config = getattr(model, "edgecn_config", None) or {}
    if "input_size" not in config:
        return {}
    dead = unreachable_taps(model, config["input_size"], config.get("in_channels", 3))
    return {name: ~mask for name, mask in dead.items()}


def sensitive_plan(model: nn.Module, train_data, cap: dict[str, float], keep: dict[str, torch.Tensor],
                   config: DeepCompressionConfig) -> dict[str, float]:
    """Per-layer sparsity from a sensitivity scan on the first ``config.scan_images`` training images.

    Each layer gets the largest scanned sparsity within ``config.sensitivity`` points of the
    unpruned model, at most its ``cap`` (``config.sparsity`` or its override); the first conv
    and the classifier at most ``config.edge_sparsity``. Explicit per-layer overrides win.
    """
    scan_data = Subset(train_data, range(min(config.scan_images, len(train_data))))
    reference = evaluate(model, scan_data)
    names = [n for n in cap if n not in config.layer_sparsity]
    sparsities = sorted({*SCAN_SPARSITIES, *cap.values()})
    scan = sensitivity_scan(model, scan_data, names, [s for s in sparsities if s <= max(cap.values())], keep,
                            floor=reference - config.sensitivity)
    edges = {next(iter(cap)), list(cap)[-1]}
    plan = dict(cap)
    for name in names:
        limit = min(cap[name], config.edge_sparsity) if name in edges else cap[name]
        plan[name] = choose_sparsity(scan[name], reference, config.sensitivity, limit)
    return plan


def deep_compress(model: nn.Module, train_data, heldout_data, config: DeepCompressionConfig | None = None,
                  progress: bool = False) -> CompressionReport:
    """Compress ``model`` in place: magnitude pruning, then k-means weight sharing, each fine-tuned.

    Pruning first zeroes the kernel taps that only see padding at the model's input size
    (``config.unreachable``, exact), then prunes each layer by magnitude to its planned
    sparsity (``config.sensitivity``: from a sensitivity scan on training images) in rounds.

    Args:
        model: a trained model without learned group convs (SqueezeNet, or a condensed model).
        train_data: dataset of ``(x, y)`` for retraining and centroid fine-tuning.
        heldout_data: dataset of ``(x, y)`` for the accuracy before and after each stage.
        config: what to do; ``config.prune`` / ``config.share`` switch the stages.
        progress: show progress bars.

    Returns:
        The per-layer and total report; ``save_compressed`` then writes the model.
    """
    from edgecn.condense import is_condensable

    config = config or DeepCompressionConfig()
    if is_condensable(model):
        raise EdgecnError("the model still has learned group convolutions",
                          "condense it first (`edgecn condense` on a CondenseNet), then compress the condensed model")
    sparsity, bits = layer_plan(model, config)
    reachable_masks(model)  # fails with a user error if the model cannot run at its own input size
    # Dropout draws from the global generator: seed a forked one, so the same config gives
    # the same model, and the caller's random state is left as it was.
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        return _stages(model, train_data, heldout_data, config, sparsity, bits, progress)


def _stages(model, train_data, heldout_data, config, sparsity, bits, progress) -> CompressionReport:
    train = {"lr": config.lr, "momentum": config.momentum, "optimizer": config.optimizer, "weight_decay": config.weight_decay,
             "batch_size": config.batch_size, "seed": config.seed, "progress": progress}
    accuracy = {"before": evaluate(model, heldout_data)}
    if config.prune:
        keep = reachable_masks(model) if config.unreachable else {}
        if config.sensitivity is not None:
            sparsity = sensitive_plan(model, train_data, sparsity, keep, config)
        targets = {name: overall_sparsity(s, keep.get(name)) for name, s in sparsity.items()}
        prune(model, train_data, targets, rounds=config.prune_rounds, epochs=config.prune_epochs, keep=keep, **train)
        accuracy["pruned"] = evaluate(model, heldout_data)
    if config.share:
        share_weights(model, train_data, bits, epochs=config.share_epochs, centroid_lr=config.centroid_lr,
                      kmeans_iters=config.kmeans_iters, **train)
        accuracy["shared"] = evaluate(model, heldout_data)
    accuracy["after"] = accuracy[list(accuracy)[-1]]
    model.eval()
    return measure(model, bits if config.share else None, accuracy)
