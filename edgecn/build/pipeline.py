"""The build: model -> condense -> rewrite -> quantize -> compile -> validate -> report.

Everything is written into a staging folder that replaces ``<out>/<model>-<target>/`` only
when the whole build succeeded (edgecn.fileio.atomic_dir), so a failed or interrupted
build leaves the previous good one untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgecn.backends import BACKENDS, CompileContext
from edgecn.backends.spec import artifact_spec, embed_spec
from edgecn.build.config import BuildConfig, BuildResult
from edgecn.build.report import deflated_size, manifest_dict, markdown_report
from edgecn.build.validate import compare, top1
from edgecn.errors import EdgecnError
from edgecn.fileio import atomic_dir, atomic_write_bytes, atomic_write_text, check_size_limit, sha256_file
from edgecn.logs import native_output_to
from edgecn.models.stats import count
from edgecn.runner.evaluate import learned_nothing
from edgecn.targets import get_target

MAX_FLOAT_LAYERS = 6
"""Most layers ``--max-drop`` keeps in float before giving up."""

METHOD_ORDER = ("minmax", "percentile", "entropy")
"""Calibration methods an int8 artifact that misses its checks is retried with."""

GENTLER_PERCENTILE = 10.0
"""Besides the recipe's percentile (99.99), its gentler step is tried: a tenth of the share clipped
(99.999). The dense blocks of a trained CondenseNet-74-c8 at 224x224 keep a few extreme values per
tensor that min-max spends the whole int8 range on and 99.99 clips too deep."""

EMULATED_IMAGES = 64
"""Held-out images the int8 reference graph of each calibration is scored on before compiling."""

MAX_RETRY_COMPILES = 2
"""Most calibrations compiled after the first, in the order the emulation ranks them."""

DIAGNOSIS_IMAGES = 4
"""Held-out images each int8 site is measured on when an int8 artifact fails its checks."""

DIAGNOSED_SITES = 10
"""Costliest int8 sites a failed artifact's manifest entry lists."""

MIN_SQNR_DB = 20.0
"""Logit SQNR below which an int8 artifact is retried with the other calibration methods even
when its top-1 holds: on a trained CondenseNet-86 in .tflite the percentile ranges gave 18.5 dB
and min-max 29.8 dB, while top-1 on the 359 held-out digits differed by one image."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The int8 calibration of a build: images (None without an int8 artifact), recipe, method."""

    images: torch.Tensor | None
    recipe: object
    method: str


@dataclasses.dataclass(frozen=True)
class Built:
    """One artifact that passed its checks, and how it was made."""

    artifact: object
    result: dict                      # compare(): top-1 and SQNR in the artifact's runtime
    drop: float                       # float top-1 minus the artifact's, in points
    method: str | None                # calibration method (int8 only)
    float_layers: tuple[str, ...]     # layers kept in float (int8 only)
    percentile: float | None = None   # the calibration's percentile (int8 only; used by the percentile method)
    spec: str = "embedded"            # "embedded", or the sidecar file carrying the spec
    files: dict = dataclasses.field(default_factory=dict, repr=False)  # path -> bytes as validated (int8 only)

    def restore(self) -> None:
        """Write the files back as they were validated (another attempt wrote over them)."""
        for path, data in self.files.items():
            atomic_write_bytes(path, data)



class SearchBudget:
    """When an int8 artifact's fidelity search must stop (``--time-limit``).

    Each step (a compile, the scoring of calibrations, the diagnosis) is priced at the artifact's
    first compile, and one that would end past the build's deadline is not started; the search
    then ships what holds or fails, saying which step it skipped. So a build's time is bounded
    whatever the model, not by how many calibrations and layers there are to try.
    """

    def __init__(self, deadline: float, limit_s: float, step_s: float, what: str, say):
        self.deadline, self.limit_s, self.step_s, self.what, self.say = deadline, limit_s, step_s, what, say

    def fits(self, step: str) -> bool:
        if time.perf_counter() + self.step_s <= self.deadline:
            return True
        self.say(f"[build] {self.what}: not {step}: it would end the build past --time-limit {self.limit_s:g} s "
                 f"(a step takes about {self.step_s:.0f} s)")
        return False


@dataclasses.dataclass(frozen=True)
class Heldout:
    """What every artifact is scored against: the held-out images (normalised NCHW) and labels,
    the float model's logits and top-1, and the spec fields each artifact carries."""

    x: np.ndarray
    y: np.ndarray
    float_logits: np.ndarray
    float_top1: float
    spec: dict


LOG_NAME = "build.log"
"""Where the converters' and runtimes' own output goes (progress bars, C++ logs, warnings)."""


def _terminal():
    """A stream to the terminal that stays there while fds 1 and 2 go to the build log."""
    try:
        return os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    except (AttributeError, OSError, ValueError):  # no real descriptor (a test's capture): write where it points
        return sys.stdout


def _model_info(model) -> dict:
    conf = model.edgecn_config
    return {"name": conf["name"], "num_classes": conf["num_classes"], "input_size": conf["input_size"],
            "form": conf.get("form", "train")}


def _data_name(data: str) -> str:
    """``digits`` or the name of the training folder (what a device user has to find again)."""
    return data if data == "digits" else Path(data).name


EVAL_CHUNK = 32
"""Images per forward pass when the float model scores the held-out split."""


STEP_SHOWN_S = 5.0
"""A progress line that took longer than this since the previous one says how long: [+84 s]."""


def _progress(terminal):
    """``say(text)``: one progress line, with the seconds since the last line when it was a long step."""
    last = [time.perf_counter()]

    def say(text: str) -> None:
        now = time.perf_counter()
        took = now - last[0]
        last[0] = now
        print(text + (f"  [+{took:.0f} s]" if took >= STEP_SHOWN_S else ""), file=terminal, flush=True)

    return say


def build(cfg: BuildConfig) -> BuildResult:
    """Build every artifact ``cfg.target`` wants, validate each and write the build folder.

    Raises:
        EdgecnError: unknown/bad target, mismatching checkpoint, too small a calibration
            set, an artifact breaking its backend's rules or losing more than ``max_drop``.
    """
    start = time.perf_counter()
    terminal = _terminal()
    say = _progress(terminal) if cfg.progress else (lambda *a, **k: None)
    target = get_target(cfg.target)
    backends = _backends(cfg, target)
    say(f"[build] target {target.name}: backends {', '.join(backends)}, precisions {', '.join(target.precisions)}")
    model, ds = _model_and_data(cfg, say)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    check_size_limit(max(64 << 20, 8 * weights), "edgecn build")  # converters' temporary files included
    x_held, y_held = ds.heldout.tensors
    example = x_held[:1].clone()
    with torch.no_grad():  # in chunks: 359 images at 224x224 in one batch took 4.3 GB for CondenseNet-74
        float_logits = torch.cat([model(chunk) for chunk in x_held.split(EVAL_CHUNK)]).numpy()
    float_top1 = top1(float_logits, y_held.numpy())
    say(f"[build] float model: top-1 {float_top1:.2f}% on {len(y_held)} held-out images")
    warnings = learned_nothing(float_logits, y_held.numpy(), ds.labels)
    for w in warnings:  # loud, and in the manifest: a useless model otherwise reads as "drop +0.00"
        print(f"edgecn build: WARNING: the float model: {w}", file=sys.stderr)
    calibration = _calibration(cfg, target, ds, model)
    name = f"{model.edgecn_config['name']}-{target.name}"
    entries: list[dict] = []
    failed: list[dict] = []
    held = Heldout(x_held.numpy(), y_held.numpy(), float_logits, float_top1,
                   {"model": _model_info(model), "data": _data_name(ds.name), "labels": list(ds.labels),
                    "normalize": ds.normalize})
    with atomic_dir(Path(cfg.out_dir) / name, owned=lambda p: (p / "manifest.json").is_file()) as stage, \
            (contextlib.nullcontext() if cfg.tool_logs else native_output_to(stage / LOG_NAME)):
        for backend_name in backends:
            backend = BACKENDS.get(backend_name)
            precisions = _precisions(cfg, target, backend_name)
            with _artifact_failures(failed, backend_name, precisions, say):
                lowered, rewrites = _lower(model, target, backend, cfg, example, say)
                macs = count(lowered, int(example.shape[-1]), int(example.shape[1]))["macs"]
                ctx = CompileContext(stage, model.edgecn_config["name"], target.options(backend_name),
                                     calibration.images, calibration.method, calibration.recipe.percentile,
                                     use_cache=cfg.use_cache)
                for precision in precisions:
                    with _artifact_failures(failed, backend_name, (precision,), say):
                        built = _compile_validated(backend, lowered, example, precision, ctx, held, cfg, say,
                                                   start + cfg.time_limit_s)
                        entries.append(_entry(built, held, ds, rewrites, macs, stage))
        if failed and not entries:
            # Nothing passed: fail as a whole, so the previous good build folder stays.
            raise failed[0]["exception"]
        failures = [{k: v for k, v in f.items() if k != "exception"} for f in failed]
        manifest = manifest_dict(held.spec["model"], held.spec["data"], target, ds, float_top1, entries, _tools(target),
                                 {"method": calibration.method, "recipe": calibration.recipe.name,
                                  "size": 0 if calibration.images is None else int(len(calibration.images)),
                                  "source": cfg.calibration_images or f"{ds.name} (training split, class-stratified)"},
                                 failures, warnings)
        report = markdown_report(manifest)
        dropped = _previous_artifacts(Path(cfg.out_dir) / name) - {(e["path"], e["precision"]) for e in entries}
        atomic_write_text(stage / "manifest.json", json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False) + "\n")
        atomic_write_text(stage / "report.md", report)
    folder = Path(cfg.out_dir) / name
    if dropped:  # the folder was replaced whole: say what of the previous build went with it
        listed = ", ".join(f"{p} ({precision})" for p, precision in sorted(dropped))
        print(f"edgecn build: note: replaced {str(folder)!r}; the previous build's {listed} "
              f"{'is' if len(dropped) == 1 else 'are'} not part of this one (build all precisions again, or pass "
              "--out elsewhere to keep both)", file=sys.stderr)
    say(report)
    return BuildResult(folder, folder / "manifest.json", report, entries, time.perf_counter() - start, failures)


@contextlib.contextmanager
def _artifact_failures(failed: list[dict], backend: str, precisions, say):
    """Record an artifact that could not be built (the build goes on with the others).

    EdgecnError is the expected kind (accuracy lost, a backend rule broken); a toolchain
    raising anything else on one artifact is recorded too, with its type, so one
    converter crash does not throw away the artifacts that passed. Interrupts propagate.
    """
    done = {(f["backend"], f["precision"]) for f in failed}
    try:
        yield
    except Exception as e:  # noqa: BLE001 - recorded per artifact and re-raised when nothing passed
        reason = e.message if isinstance(e, EdgecnError) else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        for precision in precisions:
            if (backend, precision) not in done:
                failed.append({"backend": backend, "precision": precision, "reason": reason,
                               **({"diagnosis": e.details} if getattr(e, "details", None) else {}), "exception": e})
                say(f"[build] {backend} {precision}: FAILED: {reason}")


def _previous_artifacts(folder: Path) -> set[tuple[str, str]]:
    """(path, precision) of each artifact an earlier build's manifest in ``folder`` lists (empty if none or unreadable)."""
    from edgecn.limits import MiB, read_json

    if not (folder / "manifest.json").is_file():
        return set()
    try:
        manifest = read_json(folder / "manifest.json", "manifest", 16 * MiB, "")
        return {(a["path"], a["precision"]) for a in manifest["artifacts"]}
    except (EdgecnError, KeyError, TypeError):
        return set()


def _model_and_data(cfg: BuildConfig, say):
    from edgecn.checkpoint import check_given, load_checkpoint
    from edgecn.condense import deployable
    from edgecn.train.data import load_dataset

    extra = {}
    if cfg.checkpoint:
        model, extra = load_checkpoint(cfg.checkpoint)
        check_given(model.edgecn_config, f"checkpoint {str(cfg.checkpoint)!r}", input_size=cfg.input_size)
    else:
        model = _train_default(cfg, say)
    conf = model.edgecn_config
    data = cfg.data or extra.get("dataset") or "digits"
    if cfg.data is None and data != "digits" and not Path(data).exists():
        raise EdgecnError(f"the checkpoint was trained on {data!r}, which is not on this machine",
                          "pass --data with that data set's folder (its held-out split scores the artifacts, its "
                          "training split calibrates them)")
    if cfg.data is None and cfg.checkpoint:
        say(f"[build] data: {data} (recorded in the checkpoint)")
    ds = load_dataset(data, input_size=conf["input_size"])
    if conf["num_classes"] != len(ds.labels):
        raise EdgecnError(f"checkpoint has {conf['num_classes']} classes but data {data!r} has {len(ds.labels)}",
                          "pass the checkpoint trained on this data (or --data it was trained on)")
    channels = int(ds.heldout[0][0].shape[0])
    if conf.get("in_channels", 3) != channels:
        raise EdgecnError(f"checkpoint expects {conf.get('in_channels', 3)} input channels but the data has {channels}",
                          "pass the checkpoint trained on this data")
    condensed = deployable(model)
    if condensed is not model:
        say("[build] condensed learned group convolutions")
    return condensed.eval(), ds


def _train_default(cfg: BuildConfig, say):
    from edgecn.checkpoint import load_checkpoint
    from edgecn.train import TrainConfig, train

    data = cfg.data or "digits"
    size = f"-s{cfg.input_size}" if cfg.input_size else ""
    out = Path(cfg.out_dir) / ".train" / f"{cfg.model}-{Path(data).name}-e{cfg.epochs}{size}"
    if (out / "final.pt").exists():  # same model, data and epochs: reuse the finished run
        say(f"[build] reusing trained model {out / 'final.pt'}")
        return load_checkpoint(out / "final.pt")[0]
    say(f"[build] no checkpoint given: training {cfg.model} on {data} for {cfg.epochs} epochs")
    result = train(TrainConfig(model=cfg.model, data=data, epochs=cfg.epochs, out_dir=str(out),
                               input_size=cfg.input_size, overwrite=True), progress=cfg.progress)
    say(f"[build] trained checkpoint: {result.checkpoint} (held-out top-1 {result.heldout_top1:.2f}%); "
        f"build from it again with --checkpoint {result.checkpoint}")
    return load_checkpoint(result.checkpoint)[0]


def _calibration(cfg: BuildConfig, target, ds, model) -> Calibration:
    from edgecn.quantize.calibration import from_dataset, from_folder, load_recipe

    recipe = load_recipe(cfg.calibration or target.calibration)
    method = cfg.method or recipe.method
    if not any(p == "int8" for p in (cfg.precisions or target.precisions)):
        return Calibration(None, recipe, method)
    if cfg.calibration_images:
        conf = model.edgecn_config
        calib = from_folder(cfg.calibration_images, ds.input_size, conf.get("in_channels", 3), ds.normalize, recipe.min_size)
        return Calibration(calib, recipe, method)
    return Calibration(from_dataset(ds.train, recipe, cfg.calibration_size), recipe, method)


def _backends(cfg: BuildConfig, target) -> tuple[str, ...]:
    unknown = [b for b in cfg.backends or () if b not in target.backends]
    if unknown:
        raise EdgecnError(f"target {target.name} has no backend {unknown[0]!r}",
                          f"pass --backend as one of {', '.join(target.backends)} (`edgecn targets` lists each target's)")
    return tuple(b for b in target.backends if cfg.backends is None or b in cfg.backends)


def _precisions(cfg: BuildConfig, target, backend: str) -> tuple[str, ...]:
    wanted = target.precisions_for(backend)
    return tuple(p for p in wanted if cfg.precisions is None or p in cfg.precisions)


def _lower(model, target, backend, cfg: BuildConfig, example, say):
    from edgecn.passes import LoweringConfig, RewriteReport, rewrite  # a broken pass fails the build loudly

    if cfg.lowering == "none":
        return model, RewriteReport()
    lowering = LoweringConfig.from_dict(target.lowering, backend.name)
    measure = None
    if cfg.lowering == "auto" and backend.measure is not None:
        measure = lambda m: backend.measure(m, example)  # noqa: E731
    choices = _cost_table_choices(model, target, backend.name, lowering, example, say) if lowering.cost_table else None
    lowered, report = rewrite(model, lowering, example, measure=measure, choices=choices)
    kept = _counts(report.kept)
    say(f"[build] {backend.name}: {len(report)} rewrite(s) "
        f"({', '.join(sorted({r['pass'] + ':' + str(r['choice']) for r in report})) or 'none needed'})"
        + (f"; kept as they were: {', '.join(f'{n} {k}' for k, n in kept.items())}" if kept else ""))
    return lowered, report


def _cost_table_choices(model, target, backend: str, lowering, example, say) -> dict[str, str]:
    """Each layer's fastest form from the target's cost table (``edgecn tune`` wrote it)."""
    from edgecn.cost.api import resolve_table
    from edgecn.cost.table import load_table
    from edgecn.cost.tune import collect, choose

    path = resolve_table(lowering.cost_table, target)
    if not path.exists():
        raise EdgecnError(f"target {target.name} names cost table {str(path)!r} for {backend}, which does not exist",
                          f"measure it with `edgecn tune --target {target.name} --backend {backend} --table {path}`, "
                          "or remove cost_table from the target file")
    table = load_table(path)
    if table.backend != backend:
        raise EdgecnError(f"cost table {str(path)!r} holds {table.backend} times, not {backend}",
                          "point the target's cost_table for this backend at a table of that backend")
    cands = collect(model, lowering, example)
    choices, rows = choose(cands, table)
    timed = sum(1 for r in rows if r.alternatives)
    say(f"[build] {backend}: cost table {path.name} (measured on {table.machine.get('cpu') or 'an unnamed CPU'}, "
        f"{table.threads} thread(s)) chose the form of {timed}/{len(rows)} layers"
        + ("" if timed == len(rows) else "; run `edgecn tune` for the rest, which follow the target's rules"))
    return choices


def _compile_validated(backend, model, example, precision, ctx, held, cfg: BuildConfig, say,
                       deadline: float = math.inf) -> Built:
    """Compile, check and validate; for int8, search until ``max_drop`` and ``MIN_SQNR_DB`` hold.

    An int8 artifact that loses more than ``max_drop`` top-1 points, or whose logits are less
    than ``MIN_SQNR_DB`` from float's, is rebuilt with other calibrations (unless
    ``--calibration-method`` fixed one): which one keeps a model accurate depends on the model
    (a trained CondenseNet-86 in .tflite: min-max 29.8 dB, percentile 18.5 dB), and it costs no
    speed. Where the backend has a quantized reference graph (PT2E), the other calibrations are
    first scored on it (``_rank_calibrations``: seconds each, where a compile takes minutes at
    224x224), and only those scoring above the one that missed are compiled, best first, at most
    ``MAX_RETRY_COMPILES``; elsewhere each is compiled in turn. Of those within ``max_drop``, the one with the best SQNR ships. When
    none is within ``max_drop``, the layers the diagnosis blames are kept in float, with the
    calibration that lost least.
    """
    def attempt(calibration: tuple[str, float], floats: tuple[str, ...]) -> Built:
        method, percentile = calibration
        extra = [f"calibration {_label(calibration)}"] if precision == "int8" and calibration != first else []
        extra += [f"float: {', '.join(floats)}"] if floats else []
        say(f"[build] {backend.name} {precision}: compiling" + (f" ({'; '.join(extra)})" if extra else ""))
        art = backend.compile(model, example, precision, dataclasses.replace(ctx, method=method, percentile=percentile,
                                                                             float_layers=floats))
        sidecar = embed_spec(art.path, artifact_spec(held.spec["model"], held.spec["data"], held.spec["labels"], art,
                                                      held.spec["normalize"]))
        if backend.check is not None:
            backend.check(art, ctx)
        result = compare(art, held.x, held.y, held.float_logits)
        sqnr = "identical logits" if result["sqnr_db"] is None else f"SQNR {result['sqnr_db']:.1f} dB"
        say(f"[build] {backend.name} {precision}: top-1 {result['top1']:.2f}% (float {held.float_top1:.2f}%), {sqnr}")
        # Attempts write the same file: an int8 one keeps its bytes, so the one chosen is not compiled again.
        int8 = precision == "int8"
        files = {f: f.read_bytes() for f in (art.path, sidecar) if f is not None} if int8 else {}
        return Built(art, result, held.float_top1 - result["top1"], method if int8 else None, floats,
                     percentile=percentile if int8 else None,
                     spec=sidecar.name if sidecar else "embedded", files=files)

    first = (ctx.method, ctx.percentile)
    started = time.perf_counter()
    built = attempt(first, ())
    if precision != "int8" or _good(built, cfg):
        return built
    budget = SearchBudget(deadline, cfg.time_limit_s, time.perf_counter() - started, f"{backend.name} int8", say)
    tried = [built]
    others = [c for c in _calibrations(ctx) if c != first] if cfg.method is None else []
    if others and backend.int8_graph is not None and budget.fits("scoring the other calibrations"):
        others = _rank_calibrations(backend, model, example, ctx, first, others, held, say)[:MAX_RETRY_COMPILES]
    for calibration in others:
        if not budget.fits(f"compiling with calibration {_label(calibration)}"):
            break
        built = attempt(calibration, ())
        tried.append(built)
        if _good(built, cfg):
            break
    within = [b for b in tried if b.drop <= cfg.max_drop]
    if within:  # top-1 holds: ship the most faithful logits
        keep = max(within, key=lambda b: math.inf if b.result["sqnr_db"] is None else b.result["sqnr_db"])
        if keep is not built:
            keep.restore()
        if not _good(keep, cfg):
            keep.artifact.notes.append(f"int8 logit SQNR {keep.result['sqnr_db']:.1f} dB is below {MIN_SQNR_DB:g} dB "
                                       f"with every calibration tried ({', '.join(_label(_choice(b)) for b in tried)}; "
                                       "top-1 holds)")
        say(f"[build] {backend.name} int8: kept calibration {_label(_choice(keep))}")
        return keep
    best = min(tried, key=lambda b: b.drop)
    if not budget.fits("finding where the int8 graph departs from float"):
        raise _out_of_time(backend.name, built, best, cfg, budget)
    diagnosis = _diagnose(backend, model, example, dataclasses.replace(ctx, method=best.method,
                                                                       percentile=_choice(best)[1]), held, say)
    try:
        return _keep_layers_float(lambda floats: attempt(_choice(best), floats), built, best, model, ctx.calib, cfg,
                                  backend.name, diagnosis, budget)
    except EdgecnError as e:
        if diagnosis is not None:
            weights_only, sites = diagnosis
            e.details = {"weights_only_sqnr_db": weights_only, "int8_sites": [s.as_dict() for s in sites[:DIAGNOSED_SITES]]}
        raise


def _calibrations(ctx) -> list[tuple[str, float]]:
    """Every calibration a build may try: ``(method, percentile)`` for each of ``METHOD_ORDER``, the
    percentile method at the recipe's percentile and at its gentler step."""
    gentler = 100.0 - (100.0 - ctx.percentile) / GENTLER_PERCENTILE
    out = []
    for method in METHOD_ORDER:
        for p in ((ctx.percentile, gentler) if method == "percentile" else (ctx.percentile,)):
            out.append((method, p))
    return out


def _choice(built: Built) -> tuple[str, float]:
    """The ``(method, percentile)`` an int8 artifact was calibrated with."""
    return built.method, built.percentile


def _label(calibration: tuple[str, float]) -> str:
    method, percentile = calibration
    return f"percentile {percentile:g}" if method == "percentile" else method


def _rank_calibrations(backend, model, example, ctx, first, others, held: Heldout, say) -> list[tuple[str, float]]:
    """The calibrations in ``others`` whose quantized reference graph scores a better logit SQNR than
    ``first``'s, best first.

    The reference graph is what the backend's converter turns into the artifact (its ranges,
    bias correction and backend edits included), run in torch on ``EMULATED_IMAGES`` held-out
    images: its SQNR is not the runtime's (the kernels round differently) but ranks calibrations
    as the runtime does. The first calibration's score is the bar: one that scores below the
    one that already missed is not worth a compile.
    """
    images = torch.from_numpy(held.x[:EMULATED_IMAGES])
    reference = held.float_logits[:EMULATED_IMAGES]
    scores = {}
    for calibration in [first, *others]:
        method, percentile = calibration
        graph = backend.int8_graph(model, example, dataclasses.replace(ctx, method=method, percentile=percentile))
        with torch.no_grad():
            logits = torch.cat([graph(x.unsqueeze(0)) for x in images]).numpy()
        scores[calibration] = _sqnr(reference, logits)
    ranked = sorted(others, key=lambda c: -scores[c])
    say(f"[build] {backend.name} int8: logit SQNR of the int8 reference graph on {len(images)} held-out images, "
        f"per calibration: " + ", ".join(f"{_label(c)} {scores[c]:.1f} dB" for c in [first, *ranked]))
    return [c for c in ranked if scores[c] > scores[first]]


def _sqnr(reference: np.ndarray, got: np.ndarray) -> float:
    from edgecn.metrics import sqnr_db

    value = sqnr_db(reference, got)
    return math.inf if value is None else value


def _good(built: Built, cfg: BuildConfig) -> bool:
    """Within ``--max-drop`` of float top-1, and logits at least ``MIN_SQNR_DB`` from float's."""
    sqnr = built.result["sqnr_db"]
    return built.drop <= cfg.max_drop and (sqnr is None or sqnr >= MIN_SQNR_DB)


def _diagnose(backend, model, example, ctx, held: Heldout, say):
    """``(weights_only_sqnr, sites)`` of the int8 graph (``edgecn.quantize.diagnose``), or None
    when the backend has no PT2E graph; printed as a short list."""
    from edgecn.quantize.diagnose import int8_sites, summary

    if backend.int8_graph is None:
        return None
    say(f"[build] {backend.name} int8: finding where the int8 graph departs from float "
        f"(each activation site alone, {DIAGNOSIS_IMAGES} held-out images)")
    # Without bias correction: it offsets the errors of all sites together, so with it on, one
    # site alone (or the weights alone) would be measured against biases made for all of them.
    graph = backend.int8_graph(model, example, dataclasses.replace(ctx, bias_correction=False))
    weights_only, sites = int8_sites(graph, model, torch.from_numpy(held.x[:DIAGNOSIS_IMAGES]))
    for line in summary(weights_only, sites):
        say(f"[build]   {line}")
    return weights_only, sites


def _out_of_time(backend: str, last: Built, best: Built, cfg: BuildConfig, budget: SearchBudget) -> EdgecnError:
    """The error of an int8 artifact whose search ran out of time (its last file removed)."""
    last.artifact.path.unlink(missing_ok=True)
    return EdgecnError(
        f"{backend} int8 loses {best.drop:.2f} top-1 points (more than --max-drop {cfg.max_drop}) with every "
        f"calibration tried, and keeping layers in float would end the build past --time-limit {cfg.time_limit_s:g} s",
        f"pass a longer --time-limit (a compile of this artifact takes about {budget.step_s:.0f} s), raise "
        "--max-drop, or build fp32 only with --precision fp32")


def _float_candidates(model, calib, diagnosis) -> list[str]:
    """Layers to keep in float, most useful first: the conv or linear layers whose output is an int8
    site costing more than ``MIN_SQNR_DB`` alone, in the diagnosis's order (a site outside such a
    layer, a ReLU or a pool, names none); without a diagnosis, ``rank_layers``'s order. Empty when
    no such layer exists: then keeping layers in float cannot be aimed, and the build says so at
    once instead of compiling blind."""
    from torch import nn

    from edgecn.quantize.sensitivity import rank_layers

    if diagnosis is None:
        return rank_layers(model, calib)
    layers = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    out: list[str] = []
    for site in diagnosis[1]:
        if site.sqnr_db is None or site.sqnr_db >= MIN_SQNR_DB:
            break
        name = _owning_layer(site.layer, layers)
        if name and name not in out:
            out.append(name)
    return out


def _owning_layer(path: str, layers: set[str]) -> str | None:
    """The conv or linear layer ``path`` names or sits in (a module path of the lowered model)."""
    while path:
        if path in layers:
            return path
        path = path.rpartition(".")[0]
    return None


def _keep_layers_float(attempt, last: Built, best: Built, model, calib, cfg: BuildConfig, backend: str,
                       diagnosis=None, budget: SearchBudget | None = None) -> Built:
    """Keep the fewest of the layers the diagnosis blames in float, with the best method: all of
    them first (a build they cannot save fails after one compile), then the shortest prefix of
    the ranking that holds, by bisection: at most 1 + log2(MAX_FLOAT_LAYERS) compiles."""
    ranking = _float_candidates(model, calib, diagnosis)
    if not ranking:
        last.artifact.path.unlink(missing_ok=True)
        costly = diagnosis is not None and any(s.sqnr_db is not None and s.sqnr_db < MIN_SQNR_DB for s in diagnosis[1])
        why = ("the sites that cost most are outside any conv or linear layer that could be kept in float" if costly
               else "no single layer's int8 costs enough to keep it in float (the error is spread over the graph)")
        raise EdgecnError(
            f"{backend} int8 loses {best.drop:.2f} top-1 points (more than --max-drop {cfg.max_drop}) with every "
            f"calibration tried, and {why}; report.md lists the costliest int8 sites",
            "raise --max-drop, try a larger --calibration-size or --calibration-images closer to the deployment "
            "data, or build fp32 only with --precision fp32")
    floats = tuple(ranking[:MAX_FLOAT_LAYERS])
    if budget is not None and not budget.fits(f"keeping {len(floats)} layer(s) in float"):
        raise _out_of_time(backend, last, best, cfg, budget)

    def attempt_floats(n: int) -> Built:
        last.artifact.path.unlink(missing_ok=True)
        try:
            return attempt(floats[:n])
        except EdgecnError as e:
            raise EdgecnError(f"{backend} int8 loses {best.drop:.2f} top-1 points (more than --max-drop {cfg.max_drop}) "
                              f"with every calibration tried, and keeping layers in float failed: {e.what}",
                              e.fix) from e

    # All candidates at once first: when even that loses too much, fail after one compile. Then
    # the shortest prefix of the ranking that holds, by bisection (more float layers lose less).
    last = held = attempt_floats(len(floats))
    if held.drop > cfg.max_drop:
        held.artifact.path.unlink(missing_ok=True)
        raise EdgecnError(
            f"{backend} int8 loses {held.drop:.2f} top-1 points (more than --max-drop {cfg.max_drop}) "
            f"even with {len(floats)} layer(s) kept in float ({', '.join(floats)})",
            "raise --max-drop, try a larger --calibration-size or --calibration-images closer to the deployment "
            "data, or build fp32/fp16 only with --precision")
    lo, hi = 0, len(floats)  # floats[:lo] loses too much (none kept: the methods above); floats[:hi] holds
    while hi - lo > 1:
        if budget is not None and not budget.fits(f"trying fewer than {hi} layer(s) in float"):
            break  # ship what holds: more float layers than needed is slower, not wrong
        mid = (lo + hi) // 2
        last = attempt_floats(mid)
        if last.drop <= cfg.max_drop:
            hi, held = mid, last
        else:
            lo = mid
    if last is not held:
        held.restore()
    return held


def _entry(built: Built, held: Heldout, ds, rewrites, macs: int, stage: Path) -> dict:
    art, result = built.artifact, built.result
    return {
        "path": art.path.relative_to(stage).as_posix(), "sha256": sha256_file(art.path),
        "backend": art.backend, "precision": art.precision, "size_bytes": art.path.stat().st_size,
        "size_zip_bytes": deflated_size(art.path),
        "input": {**art.input, "normalize": ds.normalize}, "output": art.output, "labels": list(ds.labels),
        "top1": result["top1"], "float_top1": round(held.float_top1, 3), "sqnr_db": result["sqnr_db"],
        "ops": art.ops, "delegated_share": art.delegated_share, "macs": macs,
        "float_layers": list(built.float_layers), "notes": art.notes, "device_steps": art.device_steps,
        "rewrites": sorted({f"{r['pass']}:{r['choice']}" for r in rewrites}),
        "kept": _counts(rewrites.kept),
        **({"calibration_method": built.method} if built.method else {}),
        **({"calibration_percentile": built.percentile} if built.method == "percentile" else {}),
        "spec": built.spec, **art.extra,
    }


def _counts(entries) -> dict[str, int]:
    """``{"pass:choice": sites}`` of report entries, e.g. the gathers a lowering kept."""
    import collections

    return dict(sorted(collections.Counter(f"{r['pass']}:{r['choice']}" for r in entries).items()))


def _tools(target) -> dict:
    from edgecn import __version__
    from edgecn.backends import package_versions

    tools = {"edgecn": __version__, **package_versions("numpy")}
    for b in target.backends:
        tools.update(BACKENDS.get(b).tools())
    return dict(sorted(tools.items()))
