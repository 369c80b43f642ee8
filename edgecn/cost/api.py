"""``tune_target``: what ``edgecn tune`` does, for Python callers too."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgecn.errors import EdgecnError


def default_table_path(target, backend: str, threads: int, remote: str | None) -> Path:
    """The target's ``[lowering] cost_table`` for ``backend`` when it names one, else a cache file
    per target, backend, threads and device under ``$EDGECN_CACHE_DIR/costs`` (default ``~/.cache/edgecn``)."""
    from edgecn.lowering import LoweringConfig

    named = LoweringConfig.from_dict(target.lowering, backend).cost_table
    if named:
        return resolve_table(named, target)
    from edgecn.quantize.calibration import cache_root

    root = cache_root()
    where = "" if not remote else "-" + "".join(c if c.isalnum() or c in "._-" else "_" for c in remote)
    return root / "costs" / f"{target.name}-{backend}-{threads}t{where}.json"


def resolve_table(path: str, target) -> Path:
    """A cost_table path from a target file: relative to that file's folder."""
    p = Path(path).expanduser()
    if not p.is_absolute() and target.path is not None:
        p = Path(target.path).parent / p
    return p


def load_model(checkpoint: str | None, model: str | None, input_size: int | None, num_classes: int | None):
    """The condensed eval model to tune, and an example input of its size."""
    import torch

    from edgecn.checkpoint import check_given, load_checkpoint
    from edgecn.condense import deployable, set_progress
    from edgecn.models import create_model

    if checkpoint:
        net, _ = load_checkpoint(checkpoint)
        check_given(net.edgecn_config, f"checkpoint {str(checkpoint)!r}", input_size=input_size, num_classes=num_classes)
    else:
        torch.manual_seed(0)
        net = create_model(model, num_classes=num_classes, input_size=input_size)
        set_progress(net, 1.0)  # every condensing stage done, as at the end of training
    net = deployable(net)
    conf = net.edgecn_config
    return net.eval(), torch.randn(1, conf.get("in_channels", 3), conf["input_size"], conf["input_size"])


def tune_target(target: str, backend: str | None = None, checkpoint: str | None = None, model: str | None = None,
                input_size: int | None = None, num_classes: int | None = None, threads: int = 1, runs: int = 100,
                rounds: int = 1, table: str | None = None, check: bool = True, remote: str | None = None,
                remote_python: str = "python3", ssh_key: str | None = None, ssh_options: tuple[str, ...] = (),
                say: Callable[[str], None] = print, accept_new_host_key: bool = False) -> list:
    """Tune ``target``'s lowering for a model on each (or one) of its CPU backends.

    Returns ``[(TuneResult, table path)]``; each table is written after its backend is done.
    """
    from edgecn.cost.measure import Timer
    from edgecn.cost.table import CostTable, load_table
    from edgecn.cost.tune import tune
    from edgecn.lowering import LoweringConfig
    from edgecn.targets import get_target

    tgt = get_target(target)
    backends = [b for b in tgt.backends if b in ("tflite", "executorch")]
    if backend is not None:
        if backend not in backends:
            raise EdgecnError(f"target {tgt.name} has no CPU backend {backend!r} to tune",
                              f"use one of {', '.join(backends) or '(none: this target has no .tflite or .pte)'}")
        backends = [backend]
    if not backends:
        raise EdgecnError(f"target {tgt.name} builds no .tflite or .pte, which is what edgecn tune times",
                          "pick a target with tflite or executorch backends (see `edgecn targets`)")
    if table is not None and len(backends) > 1:
        raise EdgecnError("--table names one file but the target has several backends", "add --backend tflite or --backend executorch")
    net, example = load_model(checkpoint, model, input_size, num_classes)
    results = []
    for name in backends:
        path = Path(table) if table else default_table_path(tgt, name, threads, remote)
        costs = _cached_table(path, name, threads, say) if table is None else (
            load_table(path) if path.exists() else CostTable(name, threads))
        if costs.backend != name or costs.threads != threads:
            raise EdgecnError(f"cost table {str(path)!r} holds {costs.backend} times at {costs.threads} thread(s), "
                              f"not {name} at {threads}", "pass another --table, or the matching --backend/--threads")
        say(f"[tune] {tgt.name} {name}: cost table {path}")
        timer = Timer(name, tgt.options(name), threads, runs, rounds=rounds, remote=remote, remote_python=remote_python,
                      ssh_key=ssh_key, ssh_options=ssh_options, accept_new_host_key=accept_new_host_key)
        result = tune(net, LoweringConfig.from_dict(tgt.lowering, name), example, costs, timer, say, check_whole=check)
        costs.save(path)
        results.append((result, path))
    return results


def _cached_table(path: Path, backend: str, threads: int, say) -> "CostTable":
    """The cost table edgecn keeps in its cache for this target (a new one when there is none).

    A cached table that cannot be read (damaged, truncated, another version, wrong types) is
    set aside as ``NAME.bad`` with one line, and the tuning starts afresh: it is a cache, and
    the user never named it. A table the user names (``--table``, a target's cost_table) is
    the user's file: a bad one is an error.
    """
    import os

    from edgecn.cost.table import CostTable, load_table
    from edgecn.fileio import set_aside

    if not os.path.lexists(path):
        return CostTable(backend, threads)
    try:
        if not path.is_file():
            raise EdgecnError(f"{str(path)!r} is not a file")
        costs = load_table(path)
        if costs.backend == backend and costs.threads == threads:
            return costs
        problem = f"holds {costs.backend} times at {costs.threads} thread(s)"
    except EdgecnError as e:
        problem = e.what
    bad = set_aside(path)
    say(f"[tune] the cached cost table could not be used ({problem}); set aside as {bad.name}, measuring afresh")
    return CostTable(backend, threads)
