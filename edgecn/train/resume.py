"""The training state a resumed run continues from, checked before any of it is used.

``last.pt`` carries the optimiser state, the gradient scaler, the RNG state and the history
of the epochs done. Each reaches torch (``set_rng_state``, ``Optimizer.load_state_dict``),
which accepts a momentum buffer of the wrong shape and fails only at the next step, deep
in training. So every part is compared with what this run would have written itself: the
optimiser built from the same options, a scaler of the same precision, an RNG state of
this torch's size, one history entry per finished epoch.
"""

from __future__ import annotations

import inspect
import math

import torch

from edgecn.checkpoint import check_tensor
from edgecn.errors import EdgecnError

FIX = "resume from an earlier checkpoint of the run, or start afresh with --overwrite (the file was edited or written by another version)"

_SCHEDULED = ("lr",)
"""Optimiser settings the schedule rewrites every step; any saved value is replaced."""


def _fail(where: str, what: str):
    raise EdgecnError(f"{where}: {what}", FIX)


def check_rng(extra: dict, where: str) -> torch.Tensor:
    """The saved torch RNG state: a uint8 vector the size this torch writes."""
    rng = extra.get("rng")
    state = rng.get("torch") if isinstance(rng, dict) else None
    want = torch.get_rng_state()
    if not isinstance(state, torch.Tensor):
        _fail(where, "has no RNG state ('rng.torch')")
    check_tensor(state, f"{where}: the RNG state")
    if state.dtype != want.dtype or tuple(state.shape) != tuple(want.shape):
        _fail(where, f"the RNG state is {str(state.dtype).removeprefix('torch.')}{list(state.shape)}, "
                     f"this torch's is {str(want.dtype).removeprefix('torch.')}{list(want.shape)}")
    return state


def check_history(extra: dict, epochs: int, where: str) -> list[dict]:
    """One entry per finished epoch, numbered 1..n, with numbers where numbers belong."""
    history, done = extra.get("history"), extra.get("epoch")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        _fail(where, "has no history (a list with one object per finished epoch)")
    if not (isinstance(done, int) and not isinstance(done, bool)) or done != len(history) or not 0 < done <= epochs:
        _fail(where, f"says {_short(done)} epochs are done, with {len(history)} in its history, of a run of {epochs}")
    for i, h in enumerate(history, 1):
        if not _same(h.get("epoch"), i):
            _fail(where, f"history entry {i} is numbered {_short(h.get('epoch'))}")
        for key, value in h.items():
            if not (value is None or isinstance(value, (bool, str)) or _finite(value)):
                _fail(where, f"history entry {i}: {_short(key)} is {_short(value)}, not a finite number")
        top1 = h.get("heldout_top1")
        if top1 is not None and not (_finite(top1) and 0 <= top1 <= 100):
            _fail(where, f"history entry {i}: 'heldout_top1' is {_short(top1)}, not a percentage")
    return history


def load_optimizer(optimizer: torch.optim.Optimizer, saved, where: str) -> None:
    """Load ``saved`` into ``optimizer`` (built from this run's options) after checking it fits.

    Groups and their settings must be what this run's options give (the schedule's ``lr``
    aside); each per-parameter tensor is the parameter's shape or a scalar (a step count).
    """
    mine = optimizer.state_dict()
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or \
            not isinstance(saved.get("param_groups"), list) or not all(isinstance(g, dict) for g in saved["param_groups"]):
        _fail(where, "has no optimiser state (an object with 'state' and 'param_groups')")
    groups = saved["param_groups"]
    sizes = [len(g.get("params", ())) if isinstance(g.get("params"), list) else None for g in groups]
    if sizes != [len(g["params"]) for g in mine["param_groups"]]:
        _fail(where, f"the optimiser has parameter groups of sizes {sizes}, this model's has "
                     f"{[len(g['params']) for g in mine['param_groups']]}")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ids = [i for g in groups for i in g["params"]]
    if len(set(ids)) != len(ids) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        _fail(where, "the optimiser's parameter ids are not distinct integers")
    for n, (theirs, ours) in enumerate(zip(groups, mine["param_groups"])):
        if not all(_finite(theirs.get(k)) and theirs[k] >= 0 for k in _SCHEDULED):
            _fail(where, f"optimiser group {n}: lr is {_short(theirs.get('lr'))}, not a number from 0")
        differ = sorted(k for k in set(theirs) | set(ours) if k not in ("params", *_SCHEDULED) and not _same(theirs.get(k), ours.get(k)))
        if differ:
            _fail(where, f"optimiser group {n}: {', '.join(f'{k}={_short(theirs.get(k))}' for k in differ[:3])} "
                         f"differ from this run's ({', '.join(f'{k}={_short(ours.get(k))}' for k in differ[:3])})")
    by_id, expected = dict(zip(ids, params)), _entry_form(optimizer)
    for key, entry in saved["state"].items():
        if key not in by_id or not isinstance(entry, dict):
            _fail(where, f"the optimiser holds state for parameter {_short(key)}, which no group lists")
        if set(entry) != set(expected):
            _fail(where, f"the optimiser state of parameter {key} has {sorted(map(str, entry))}, "
                         f"{type(optimizer).__name__} keeps {sorted(expected)}")
        for name, value in entry.items():
            _check_entry(value, expected[name], by_id[key], f"{where}: optimiser state {_short(name)} of parameter {key}")
    optimizer.load_state_dict(saved)


def _entry_form(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor | None]:
    """What this optimiser keeps per parameter after a step, learnt from one step on a probe.

    A one-element parameter of the same optimiser class and settings shows the names, and
    for each whether it is a scalar (a step count), parameter-shaped, or None.
    """
    probe = torch.zeros(1, requires_grad=True)
    accepted = inspect.signature(type(optimizer)).parameters
    defaults = {k: v for k, v in optimizer.defaults.items()
                if k in accepted and k not in ("foreach", "fused", "differentiable")}
    twin = type(optimizer)([probe], **defaults)
    probe.grad = torch.ones(1)
    twin.step()
    return dict(twin.state[probe])


def _check_entry(value, form, param: torch.Tensor, where: str) -> None:
    if form is None:
        if value is not None:
            raise EdgecnError(f"{where} is {_short(value)}; this optimiser keeps nothing there", FIX)
        return
    if not isinstance(value, torch.Tensor):
        raise EdgecnError(f"{where} is {_short(value)}, not a tensor", FIX)
    check_tensor(value, where)
    shape = tuple(form.shape) if form.dim() == 0 else tuple(param.shape)
    if tuple(value.shape) != shape:
        raise EdgecnError(f"{where} has shape {list(value.shape)}, it should be {list(shape)}", FIX)
    if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
        raise EdgecnError(f"{where} is not finite floating-point values", FIX)


def check_scaler(scaler: torch.amp.GradScaler, saved, where: str) -> dict:
    """The gradient scaler's state: what a scaler of this run's precision writes, with finite numbers."""
    mine = scaler.state_dict()
    if saved in (None, {}) and not mine:
        return {}
    if not isinstance(saved, dict) or set(saved) != set(mine) or not all(_finite(v) and v >= 0 for v in saved.values()) or not saved.get("scale", 1) > 0:
        _fail(where, f"the gradient scaler state {_short(saved)} is not one this run's precision writes")
    return saved


def _same(a, b) -> bool:
    """Equal settings, compared without ever asking a tensor for its truth."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return isinstance(a, (int, float, str, type(None))) and a == b


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
