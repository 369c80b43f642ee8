"""Deep-compress a loaded checkpoint: the compressed weight file plus a checkpoint `edgecn build` takes.

``compress`` (reached through ``edgecn.condense.condense_checkpoint``) writes two files next to each other: ``<stem>.edc`` (what ships) and
``<stem>.pt``, a normal checkpoint rebuilt *from* the ``.edc`` file, so what gets built and
deployed is bit-exactly what the compressed file holds.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from edgecn.compress.config import DeepCompressionConfig
from edgecn.errors import EdgecnError

SUFFIX = ".edc"


def compress(model: torch.nn.Module, extra: dict, path: Path, out: str | os.PathLike | None,
             config: DeepCompressionConfig, data: str | None = None, progress: bool = False) -> dict:
    """Deep-compress ``model`` (loaded from ``path``); write ``<out>.edc`` and the checkpoint ``out``.

    Called by ``edgecn.condense.condense_checkpoint``, which reads the checkpoint and decides the
    method.

    Args:
        out: the output checkpoint (default: ``<stem>-compressed.pt`` beside ``path``); the
            compressed weight file goes beside it with the suffix ``.edc``.
        config: what to do.
        data: data to retrain on and to measure held-out top-1 with (default: the data the
            checkpoint was trained on).
        progress: show progress bars.

    Returns:
        ``{"checkpoint", "compressed", "source", "model", "sizes", "report"}``; ``sizes``
        holds the ``.edc`` file's bytes raw and deflated, ``report`` the per-layer report.

    Raises:
        EdgecnError: output that would overwrite the input, no data.
    """
    from edgecn.checkpoint import save_checkpoint
    from edgecn.compress.pipeline import deep_compress
    from edgecn.compress.store import bundle_size, load_compressed, save_compressed
    from edgecn.condense.checkpoint import KEPT_EXTRA
    from edgecn.fileio import sha256_file
    from edgecn.train.data import load_dataset

    out = Path(out) if out is not None else path.with_name(f"{path.stem}-compressed.pt")
    edc = out.with_suffix(SUFFIX)
    if path.resolve() in (out.resolve(), edc.resolve()):
        raise EdgecnError("the output would overwrite the input checkpoint", "pass another -o/--out path")
    source = data or extra.get("dataset")
    if not source:
        raise EdgecnError(f"{str(path)!r} does not say which data it was trained on",
                          "pass --data (e.g. digits) to retrain and measure on")
    ds = load_dataset(source, model.edgecn_config["input_size"])
    report = deep_compress(model, ds.train, ds.heldout, config, progress=progress)
    summary = {"source": str(path), "accuracy": report.accuracy, "weights_ratio": report.weights_ratio,
               "sparsity": report.sparsity}
    save_compressed(edc, model, extra=summary)
    shipped = load_compressed(edc)
    _check_same(model, shipped, edc)
    kept = {k: extra[k] for k in KEPT_EXTRA if k in extra}
    save_checkpoint(out, shipped, extra={**kept, "kind": "compressed", "source": str(path), "heldout_top1":
                                         report.accuracy["after"],
                                         "compressed": {"path": str(edc), "sha256": sha256_file(edc)}})
    return {"checkpoint": str(out), "compressed": str(edc), "source": str(path),
            "model": model.edgecn_config["name"], "sizes": bundle_size(edc), "report": report.to_dict()}


def _check_same(model: torch.nn.Module, shipped: torch.nn.Module, edc: Path) -> None:
    """The reloaded file must hold bit-exactly the compressed weights (else the file format is broken)."""
    a, b = model.state_dict(), shipped.state_dict()
    for k in a:
        x, y = a[k], b[k]
        if x.is_floating_point():
            x, y = x.view(torch.int32), y.view(torch.int32)
        if not torch.equal(x, y):
            raise RuntimeError(f"{edc}: tensor {k} did not reload bit-exactly")
