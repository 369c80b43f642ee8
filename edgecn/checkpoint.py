"""Checkpoints: a plain dict of tensors and primitives, saved atomically, loaded weights-only.

Loading never unpickles arbitrary objects: ``torch.load(weights_only=True)`` refuses any
pickled class outside tensors and plain containers, so a checkpoint that carries code is
rejected without running it.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from edgecn.errors import EdgecnError
from edgecn.fileio import atomic_path

FORMAT = "edgecn-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (with its ``edgecn_config``) and ``extra`` (training state) atomically."""
    config = getattr(model, "edgecn_config", None)
    if config is None:
        raise ValueError("model has no edgecn_config; build it with edgecn.models.create_model")
    payload = {"format": FORMAT, "version": VERSION, "config": config,
               "state_dict": model.state_dict(), "extra": extra or {}}
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as e:  # torch's zip writer reports a full disk or a file-size limit this way
            raise OSError(f"torch.save failed ({str(e).splitlines()[0][:120]})") from e
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict, validated; raises EdgecnError for anything that is not one."""
    path = Path(path)
    if not path.exists():
        raise EdgecnError(f"checkpoint {str(path)!r} does not exist", "check the path (checkpoints are written by `edgecn train` and `edgecn condense`)")
    if path.is_dir():
        raise EdgecnError(f"{str(path)!r} is a folder, not a checkpoint", "pass the .pt file inside it (e.g. runs/NAME/last.pt)")
    from edgecn.limits import MiB, read_file

    data = read_file(path, "checkpoint", MAX_CHECKPOINT_MIB * MiB)
    if not data:
        raise EdgecnError(f"checkpoint {str(path)!r} is empty", "re-create it with `edgecn train` (an interrupted copy?)")
    if not data.startswith(b"PK\x03\x04"):  # torch would fall back to its legacy unpickler and misreport
        raise EdgecnError(f"{str(path)!r} is not an edgecn checkpoint (not a PyTorch zip file; truncated or corrupt, or another kind of file)",
                          "pass a checkpoint written by `edgecn train` or `edgecn condense`")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise EdgecnError(f"checkpoint {str(path)!r} contains pickled objects that are not plain weights; refusing to load it",
                          "only load checkpoints written by edgecn (they hold tensors and plain values only)") from e
    except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        raise EdgecnError(f"checkpoint {str(path)!r} is truncated or corrupt ({str(e).splitlines()[0][:120]})",
                          "re-create it with `edgecn train`, or resume from an earlier checkpoint") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EdgecnError(f"{str(path)!r} is not an edgecn checkpoint",
                          "pass a checkpoint written by `edgecn train` or `edgecn condense`")
    if payload.get("version") != VERSION:
        raise EdgecnError(f"checkpoint {str(path)!r} has format version {payload.get('version')}, this edgecn reads {VERSION}",
                          "use the edgecn version that wrote it")
    _check_structure(payload, f"checkpoint {str(path)!r}")
    return payload


MAX_CHECKPOINT_MIB = 16 * 1024
"""Largest checkpoint read (16 GiB); anything bigger is not a CNN edgecn trains."""


def _check_structure(payload: dict, where: str) -> None:
    """Every field later code relies on, with its type and range, checked once here."""
    from edgecn.limits import check_number

    fix = "re-create it with `edgecn train` (the file was edited or written by another tool)"
    state, config, extra = payload.get("state_dict"), payload.get("config"), payload.get("extra", {})
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                           for k, v in state.items()):
        raise EdgecnError(f"{where} has no 'state_dict' of named tensors", fix)
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise EdgecnError(f"{where} has no model 'config' (an object naming the model)", fix)
    if not isinstance(extra, dict):
        raise EdgecnError(f"{where}: 'extra' must be an object", fix)
    check_number(config.get("num_classes"), int, 1, 100_000, f"{where}: config.num_classes")
    check_number(config.get("input_size"), int, 8, 4096, f"{where}: config.input_size")
    if "in_channels" in config:
        check_number(config["in_channels"], int, 1, 4, f"{where}: config.in_channels")
    if not isinstance(config.get("overrides", {}), dict):
        raise EdgecnError(f"{where}: config.overrides must be an object of model options", fix)
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise EdgecnError(f"{where} holds NaN or infinite weights ({', '.join(bad[:3])}"
                          f"{' ...' if len(bad) > 3 else ''}): the training that wrote it diverged",
                          "retrain with a lower --lr, or use an earlier checkpoint")


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model stored in ``path`` and load its weights.

    Returns:
        ``(model, extra)``: the model in eval mode, and the extra training state.
    """
    from edgecn.models import rebuild_model

    payload = read_checkpoint(path)
    config = payload["config"]
    model = rebuild_model(config)
    model.edgecn_config = config
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise EdgecnError(f"checkpoint {str(path)!r} does not match model {config.get('name')!r} ({str(e).splitlines()[0][:160]})",
                          "it was probably edited or written by another version; re-create it with `edgecn train`") from e
    return model.eval(), payload.get("extra", {})
