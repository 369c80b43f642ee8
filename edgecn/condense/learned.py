"""Walkers over the condensing protocol (``set_progress`` / ``condense`` / ``lasso_loss``)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def _condensable(model: nn.Module):
    return [m for m in model.modules() if hasattr(m, "condense") and hasattr(m, "set_progress")]


def is_condensable(model: nn.Module) -> bool:
    """True when the model has layers that learn a structure to condense (CondenseNet)."""
    return bool(_condensable(model))


def set_progress(model: nn.Module, progress: float) -> int:
    """Move every condensable layer to the stage for ``progress``; returns the drop events."""
    return sum(m.set_progress(progress) for m in _condensable(model))


def condensing_stage_of(model: nn.Module) -> int | None:
    """The (lowest) condensing stage among the model's learned group convs, or None."""
    stages = [int(m.stage) for m in model.modules() if hasattr(m, "stage") and hasattr(m, "condense")]
    return min(stages) if stages else None


def group_lasso(model: nn.Module) -> torch.Tensor:
    """Sum of the group-lasso terms of all learned group convs (0 when there are none)."""
    terms = [m.lasso_loss() for m in model.modules() if hasattr(m, "lasso_loss")]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


@torch.no_grad()
def deployable(model: nn.Module) -> nn.Module:
    """``model`` as it deploys: a condensed copy when it has learned layers not condensed yet,
    else ``model`` itself (what a build or ``edgecn tune`` loads a checkpoint into)."""
    if is_condensable(model) and getattr(model, "edgecn_config", {}).get("form") != "condensed":
        return condense_model(model.eval())
    return model


def condense_model(model: nn.Module, strict: bool = True) -> nn.Module:
    """A copy of ``model`` with every condensable layer replaced by its deployable form.

    Args:
        model: a trained model (left unchanged).
        strict: require every layer to have finished its condensing stages. ``False``
            builds only the structure, to load condensed weights into.
    """
    out = copy.deepcopy(model)
    _replace(out, strict)
    if hasattr(out, "edgecn_config"):
        out.edgecn_config = {**out.edgecn_config, "form": "condensed"}
    return out.eval() if not model.training else out


def _replace(module: nn.Module, strict: bool) -> None:
    for name, child in list(module.named_children()):
        if hasattr(child, "condense") and hasattr(child, "set_progress"):
            setattr(module, name, child.condense(strict=strict))
        else:
            _replace(child, strict)
