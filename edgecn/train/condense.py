"""Condensing a trained checkpoint into its deployable form, with proof that nothing changed.

``condense_checkpoint`` picks a condenser for the model (``_condenser_for``: the one place
that decides which method applies), saves the result as a ``form: condensed`` checkpoint and
checks it against the training-form model on random inputs and on the held-out split.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import torch

from edgecn.errors import EdgecnError

EXACT_TOLERANCE = 1e-4  # max abs logit difference that still counts as the same function


def condense_checkpoint(path: str | os.PathLike, out: str | os.PathLike | None = None,
                        data: str | None = None, samples: int = 16) -> dict:
    """Condense the model in ``path`` and write it to ``out`` (default: ``<stem>-condensed.pt``).

    Args:
        path: a training-form checkpoint (``final.pt`` or ``last.pt`` of ``edgecn train``).
        out: where the condensed checkpoint goes; never the input itself.
        data: data set for the held-out check (default: the one the checkpoint was trained on).
        samples: random inputs for the exactness check.

    Returns:
        A report: output path, before/after params, MACs and weight bytes, and the
        verification (max abs logit difference and top-1 of both forms).

    Raises:
        EdgecnError: unreadable checkpoint, already condensed, nothing to condense, or a
            model that has not finished its condensing stages.
    """
    from edgecn.checkpoint import load_checkpoint, save_checkpoint

    path = Path(path)
    out = Path(out) if out is not None else path.with_name(f"{path.stem}-condensed.pt")
    if out.resolve() == path.resolve():
        raise EdgecnError("the output would overwrite the input checkpoint", "pass another -o/--out path")
    model, extra = load_checkpoint(path)
    config = model.edgecn_config
    if config.get("form") == "condensed":
        raise EdgecnError(f"{str(path)!r} is already condensed", "pass the training-form checkpoint (final.pt)")
    condensed = _condenser_for(model, config["name"])(model)
    verification = verify(model, condensed, config, extra, data, samples)
    if verification["max_abs_diff"] > EXACT_TOLERANCE:
        raise RuntimeError(f"condensed model differs from the trained one by {verification['max_abs_diff']:.3g}")
    kept = {k: extra[k] for k in ("labels", "normalize", "dataset", "config", "heldout_top1") if k in extra}
    save_checkpoint(out, condensed, extra={**kept, "kind": "condensed", "source": str(path),
                                           "verification": verification})
    return {"checkpoint": str(out), "source": str(path), "model": config["name"],
            "before": _size(model, config), "after": _size(condensed, config), "verification": verification}


def _condenser_for(model: torch.nn.Module, name: str) -> Callable[[torch.nn.Module], torch.nn.Module]:
    """The condensing method for ``model``; extend here for new kinds of compression."""
    from edgecn.condense import condense_model, is_condensable

    if is_condensable(model):
        return condense_model
    raise EdgecnError(f"model {name!r} has no learned group convolutions: nothing to condense",
                      "condense a CondenseNet checkpoint; other models deploy as trained")


@torch.no_grad()
def verify(model, condensed, config: dict, extra: dict, data: str | None, samples: int) -> dict:
    """Compare both forms on random inputs and on the held-out split (when it can be loaded)."""
    from edgecn.train.loop import evaluate, predict

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(samples, config.get("in_channels", 3), config["input_size"], config["input_size"], generator=gen)
    diffs = {"random": float((predict(model, x) - predict(condensed, x)).abs().max())}
    report = {"random_inputs": samples}
    data = data or extra.get("dataset")
    if data:
        from edgecn.train.data import load_dataset

        ds = load_dataset(data, config["input_size"])
        if len(ds.labels) != config["num_classes"]:  # top-1 against another label set would be meaningless
            raise EdgecnError(f"the checkpoint has {config['num_classes']} classes but data {data!r} has {len(ds.labels)}",
                              "pass the --data the checkpoint was trained on")
        held = ds.heldout
        hx = held.tensors[0]
        diffs["heldout"] = float((predict(model, hx) - predict(condensed, hx)).abs().max()) if len(hx) else 0.0
        report.update(heldout_images=len(hx), heldout_top1_before=evaluate(model, held),
                      heldout_top1_after=evaluate(condensed, held))
    report["max_abs_diff_random"] = diffs["random"]
    report["max_abs_diff_heldout"] = diffs.get("heldout")
    report["max_abs_diff"] = max(diffs.values())
    return report


def _size(model: torch.nn.Module, config: dict) -> dict:
    from edgecn.models.stats import count

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return {**count(model, config["input_size"], config.get("in_channels", 3)), "weight_bytes": buf.tell()}
