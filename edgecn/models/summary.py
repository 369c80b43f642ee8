"""One row per model for `edgecn models`: sizes in training and condensed form."""

from __future__ import annotations

from edgecn.models import MODELS, create_model
from edgecn.models.stats import count


def summarize(name: str, num_classes: int | None = None, input_size: int | None = None) -> dict:
    """Parameters and multiply-adds of ``name`` (and of its condensed form, if it has one)."""
    from edgecn.condense import condense_model, is_condensable, set_progress

    spec = MODELS.get(name)
    model = create_model(name, num_classes, input_size)
    cfg = model.edgecn_config
    row = {"name": spec.name, "family": spec.family, "input_size": cfg["input_size"],
           "num_classes": cfg["num_classes"], "description": spec.description,
           **count(model, cfg["input_size"])}
    if is_condensable(model):
        set_progress(model, 1.0)
        condensed = condense_model(model.eval())
        c = count(condensed, cfg["input_size"])
        row.update(condensed_params=c["params"], condensed_macs=c["macs"])
    return row
