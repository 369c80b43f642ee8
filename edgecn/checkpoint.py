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
    for key, tensor in state.items():  # before any value is read: a crafted shape could ask for terabytes
        check_tensor(tensor, f"{where}: tensor {key!r}")
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
    bad = [k for k, v in state.items() if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all())]
    if bad:
        raise EdgecnError(f"{where} holds NaN or infinite weights ({', '.join(bad[:3])}"
                          f"{' ...' if len(bad) > 3 else ''}): the training that wrote it diverged",
                          "retrain with a lower --lr, or use an earlier checkpoint")


MAX_TENSOR_ELEMENTS = 1 << 31
"""Most elements in one saved tensor (8 GiB of float32); no layer of a CNN comes near it."""

_REAL = (torch.float16, torch.bfloat16, torch.float32, torch.float64,
         torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


def check_tensor(tensor: torch.Tensor, where: str) -> None:
    """A saved tensor is dense, on the CPU, real-valued and owns every element it shows.

    ``torch.load`` accepts sparse tensors, tensors on the ``meta`` device (a shape without
    data), complex numbers and zero-stride views that show one stored value as billions of
    elements; any of them reaches a layer as an internal error, an allocation of terabytes,
    or weights silently cast. Only the tensor's metadata is read here, never its values.
    """
    fix = "re-create it with `edgecn train` (the file was edited or written by another tool)"
    if tensor.layout != torch.strided:
        raise EdgecnError(f"{where} is a {str(tensor.layout).removeprefix('torch.')} tensor; saved weights are dense", fix)
    if tensor.device.type != "cpu":
        raise EdgecnError(f"{where} holds no data (it is on the {tensor.device.type!r} device: a shape without values)", fix)
    if tensor.dtype not in _REAL:
        raise EdgecnError(f"{where} has dtype {str(tensor.dtype).removeprefix('torch.')}; weights are real numbers "
                          "(float16/32/64, bfloat16, integers or bool)", fix)
    if tensor.numel() > MAX_TENSOR_ELEMENTS:
        raise EdgecnError(f"{where} has {tensor.numel():,} elements, more than the {MAX_TENSOR_ELEMENTS:,} any layer holds", fix)
    stored = tensor.untyped_storage().nbytes() // max(1, tensor.element_size())
    if tensor.numel() > 1 and (0 in tensor.stride() or tensor.numel() > stored):
        raise EdgecnError(f"{where} shows {tensor.numel():,} elements but stores {stored:,} (a zero-stride or "
                          "overlapping view); saved weights store every element", fix)


def _kind(dtype: torch.dtype) -> str:
    return "bool" if dtype == torch.bool else "float" if dtype.is_floating_point else "integer"


def fit_state(model: torch.nn.Module, state: dict, where: str) -> None:
    """Load ``state`` into ``model`` after checking that every tensor fits it.

    Names, shapes and kinds (float, integer, bool) are compared first, so a config that
    disagrees with its weights (another class count, input channels, model or form) is one
    error naming the tensors, not a cast or a torch traceback. Layers with constraints on
    their values (an index within its channels, a stage within its schedule) check them
    after loading through ``state_problems()``.

    Raises:
        EdgecnError: naming up to three tensors that do not fit and what the model expects.
    """
    expected = model.state_dict()
    problems = [f"{k!r} is missing" for k in expected if k not in state]
    problems += [f"{k!r} is not a tensor of this model" for k in state if k not in expected]
    for key in (k for k in expected if k in state):
        want, got = expected[key], state[key]
        if tuple(want.shape) != tuple(got.shape):
            problems.append(f"{key!r} has shape {list(got.shape)}, the model's is {list(want.shape)}")
        elif _kind(want.dtype) != _kind(got.dtype):
            problems.append(f"{key!r} holds {str(got.dtype).removeprefix('torch.')} values, "
                            f"the model's are {_kind(want.dtype)}")
    config = getattr(model, "edgecn_config", None) or {}
    described = ", ".join(f"{k}={config[k]!r}" for k in ("name", "num_classes", "in_channels", "form") if k in config)
    fix = ("the config saved beside the weights must describe them; re-create the checkpoint with `edgecn train` "
           "(it was edited, or written by another tool or version)")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise EdgecnError(f"{where} does not fit the model its config describes ({described}): "
                          f"{'; '.join(problems[:3])}{more}", fix)
    model.load_state_dict(state)
    for name, module in model.named_modules():
        for problem in getattr(module, "state_problems", lambda: [])():
            raise EdgecnError(f"{where}: {name or 'the model'}: {problem}", fix)


def check_given(config: dict, where: str, **given) -> None:
    """Options given beside a checkpoint (``--input-size``, ``--num-classes``) agree with its config.

    A checkpoint fixes its model; an option that says otherwise would build or price a model
    other than the one its weights were trained as, so it is an error, not silently ignored.
    ``None`` means not given.
    """
    differ = [f"--{k.replace('_', '-')} {v}" for k, v in given.items() if v is not None and v != config.get(k)]
    if differ:
        saved = ", ".join(f"{k.replace('_', '-')} {config.get(k)}" for k, v in given.items() if v is not None)
        raise EdgecnError(f"{' and '.join(differ)} disagree with {where}, whose model has {saved}",
                          "drop the option (the checkpoint's own value is used), or train a checkpoint at that value")


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model stored in ``path`` and load its weights.

    Returns:
        ``(model, extra)``: the model in eval mode, and the extra training state.
    """
    from edgecn.models import rebuild_model

    payload = read_checkpoint(path)
    config = payload["config"]
    try:
        model = rebuild_model(config)
    except EdgecnError as e:  # the saved config is input too: say which file it came from
        raise EdgecnError(f"checkpoint {str(path)!r}: {e.what}", e.fix) from e
    model.edgecn_config = config
    fit_state(model, payload["state_dict"], f"checkpoint {str(path)!r}")
    return model.eval(), payload.get("extra", {})
