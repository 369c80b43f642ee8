"""One entry point from a trained checkpoint to its deployable form: ``condense_checkpoint``.

The method follows the model, as a config object says what to do (the way
``quantize_(model, Config)`` works in torchao):

- a model with learned group convs (CondenseNet) is *condensed*: each learned layer becomes
  an index layer plus a standard group conv (``Condensing``), checked exact against the
  training form on random inputs and on the held-out split;
- any other model (SqueezeNet, an already condensed CondenseNet) gets *Deep Compression*
  (``edgecn.compress.DeepCompressionConfig``): pruning, weight sharing, Huffman coding, written
  as a ``.edc`` file plus a checkpoint rebuilt from it (``edgecn.compress.checkpoints``).

The checkpoint is read once, here; ``_method_for`` is the only code that decides which method
applies, and it refuses a config that does not fit the model.
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import torch

from edgecn.errors import EdgecnError

EXACT_TOLERANCE = 1e-4  # max abs logit difference that still counts as the same function
KEPT_EXTRA = ("labels", "normalize", "dataset", "config", "heldout_top1")  # what a derived checkpoint carries over


@dataclasses.dataclass(frozen=True)
class Condensing:
    """Condense learned group convs; ``samples`` random inputs check the result is exact."""

    samples: int = 16


def condense_checkpoint(path: str | os.PathLike, out: str | os.PathLike | None = None, config=None,
                        data: str | None = None, progress: bool = False) -> dict:
    """Turn the model in ``path`` into its deployable form and write it to ``out``.

    Args:
        path: a trained checkpoint (``final.pt`` of ``edgecn train``).
        out: the output checkpoint (default: ``<stem>-condensed.pt`` or ``<stem>-compressed.pt``
            beside ``path``); never the input itself.
        config: ``Condensing()`` or a ``DeepCompressionConfig``; default: the one the model
            takes (``Condensing`` when it has learned group convs, else Deep Compression).
        data: data for the held-out check (default: the data the checkpoint was trained on).
        progress: show progress bars (Deep Compression retrains).

    Returns:
        A report with ``method`` ("condensing" or "deep_compression"), ``checkpoint``,
        ``source``, ``model`` and the method's own fields (see ``condense`` below and
        ``edgecn.compress.checkpoints.compress``).

    Raises:
        EdgecnError: unreadable checkpoint, an output that would overwrite the input, a config
            that does not fit the model, or a model that has not finished its condensing stages.
    """
    from edgecn.checkpoint import load_checkpoint

    path = Path(path)
    model, extra = load_checkpoint(path)
    config = _method_for(model, path, config)
    if isinstance(config, Condensing):
        return {"method": "condensing", **condense(model, extra, path, out, config, data)}
    from edgecn.compress.checkpoints import compress

    return {"method": "deep_compression", **compress(model, extra, path, out, config, data, progress)}


def _method_for(model: torch.nn.Module, path: Path, config):
    from edgecn.compress.config import DeepCompressionConfig
    from edgecn.condense import is_condensable

    name = model.edgecn_config["name"]
    if model.edgecn_config.get("form") == "condensed" and isinstance(config, Condensing):
        raise EdgecnError(f"{str(path)!r} is already condensed", "pass the training-form checkpoint (final.pt)")
    learned = is_condensable(model) and model.edgecn_config.get("form") != "condensed"
    if config is None:
        return Condensing() if learned else DeepCompressionConfig()
    if isinstance(config, Condensing) and not learned:
        raise EdgecnError(f"model {name!r} has no learned group convolutions: nothing to condense",
                          "deep-compress it instead (`edgecn condense` does by default), or deploy it as trained")
    if isinstance(config, DeepCompressionConfig) and learned:
        raise EdgecnError(f"model {name!r} has learned group convolutions: condense it before deep compression",
                          "condense it first (no deep-compression options), then deep-compress the condensed checkpoint")
    if not isinstance(config, (Condensing, DeepCompressionConfig)):
        raise TypeError(f"config must be Condensing or DeepCompressionConfig, not {type(config).__name__}")
    return config


def condense(model: torch.nn.Module, extra: dict, path: Path, out, config: Condensing, data: str | None) -> dict:
    """Condense ``model`` (loaded from ``path``), verify it, write ``out``; the report without ``method``."""
    from edgecn.checkpoint import save_checkpoint
    from edgecn.condense import condense_model

    out = Path(out) if out is not None else path.with_name(f"{path.stem}-condensed.pt")
    if out.resolve() == path.resolve():
        raise EdgecnError("the output would overwrite the input checkpoint", "pass another -o/--out path")
    spec = model.edgecn_config
    condensed = condense_model(model)
    verification = verify(model, condensed, spec, extra, data, config.samples)
    if verification["max_abs_diff"] > EXACT_TOLERANCE:
        raise RuntimeError(f"condensed model differs from the trained one by {verification['max_abs_diff']:.3g}")
    kept = {k: extra[k] for k in KEPT_EXTRA if k in extra}
    save_checkpoint(out, condensed, extra={**kept, "kind": "condensed", "source": str(path),
                                           "verification": verification})
    return {"checkpoint": str(out), "source": str(path), "model": spec["name"],
            "before": _size(model, spec), "after": _size(condensed, spec), "verification": verification}


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
