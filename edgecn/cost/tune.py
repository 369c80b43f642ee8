"""Choose each segment's lowering from measured int8 times in the target's runtime.

The lowering's forms interact inside a segment (folding a gather dense removes the grouped
1x1 conv that a merge would widen), so a segment is priced whole, in every form a set of
lowering *variants* gives it: each index form with each grouped-conv rule. Every distinct
form (by ``segments.describe`` key) is compiled alone to int8 and timed by ``edgecn.runner``
on the machine that will run it; each segment then takes its fastest form, and the build
applies those per-site choices (``rewrite(..., choices=...)``), so the result is exact by
construction and checked like any rewrite.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import fx, nn

from edgecn.cost import segments as seg
from edgecn.cost.table import CALL, CostTable, boundary_key
from edgecn.errors import EdgecnError
from edgecn.lowering import LoweringConfig
from edgecn.passes.base import trace

TUNED_PASSES = ("index", "group_conv")
INDEX_FORMS = ("dense", "kept")
"""Index forms: folded dense, or kept (as ``LoweringConfig.kept_gather`` says for the backend)."""
GROUP_RULES = ("native", 4, 8, 16, 32, "dense")
"""Grouped-conv variants: native, merged to at least N outputs per group, dense. XNNPACK's int8
grouped conv speeds up with outputs per group up to about 16-32; splitting into per-group convs
was 2-5x slower than native on every shape measured, so it is not a candidate."""


def variants(base: LoweringConfig) -> dict[str, LoweringConfig]:
    """The lowerings whose segment forms are timed: the target's own, then each index form with each grouped-conv rule."""
    out = {"target": base}
    for form in INDEX_FORMS:
        index = base.kept_gather if form == "kept" else form
        for rule in GROUP_RULES:
            if rule in ("native", "dense"):
                cfg = dataclasses.replace(base, index=index, group_conv=rule)
            else:
                cfg = dataclasses.replace(base, index=index, group_conv="merge", min_group_outputs=rule)
            out[f"{index}/{rule}"] = cfg
    return out


@dataclasses.dataclass(frozen=True)
class Form:
    """One segment as one variant lowers it."""

    variant: str
    key: str
    what: str
    choices: tuple[tuple[str, str], ...]  # ("pass:site", form) for every tuned site in the segment


@dataclasses.dataclass
class Candidates:
    """Every form of every segment, and the micro-models to time them."""

    ends: list[str]                      # each segment's end cut, in order
    forms: list[dict[str, Form]]         # per segment: key -> first variant giving it
    models: dict[str, tuple[fx.GraphModule, tuple[int, ...]]]
    cut_shapes: list[tuple[int, ...]]    # shapes of the cuts inside the model (between segments)
    target: fx.GraphModule | None = None  # the model as the target's own rules lower it
    pairs: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> text of neighbour pairs to time


def collect(model: nn.Module, base: LoweringConfig, example: torch.Tensor,
            say: Callable[[str], None] = lambda s: None, only_target: bool = False) -> Candidates:
    """Lower ``model`` with every variant (``only_target``: the target's own rules alone) and
    gather the distinct forms of each segment."""
    from edgecn.passes import rewrite

    lowered = {}
    for name, cfg in (variants(base) if not only_target else {"target": base}).items():
        gm, report = rewrite(model, cfg, example)
        lowered[name] = (seg.shaped(gm, example), report)
    original = seg.shaped(trace(model), example)
    common = set(seg.cuts(original))
    for gm, _ in lowered.values():
        common &= set(seg.cuts(gm))
    common = seg.significant(original, common)
    parts = seg.segments(original, keep=common)
    ends = [p.end for p in parts]
    where = _site_segments(original, parts)
    forms: list[dict[str, Form]] = [{} for _ in parts]
    models: dict[str, tuple[fx.GraphModule, tuple[int, ...]]] = {}
    for name, (gm, report) in lowered.items():
        pieces = seg.segments(gm, keep=common)
        if [p.end for p in pieces][:-1] != ends[:-1]:  # the output node may be a new one
            raise EdgecnError(f"lowering variant {name} cuts the model differently from the others",
                              "report this model: its rewrites move the points where layers join")
        chosen = _choices(report, where, len(parts))
        for i, piece in enumerate(pieces):
            key, what = seg.describe(gm, piece)
            if key not in forms[i]:
                forms[i][key] = Form(name, key, what, tuple(sorted(chosen[i].items())))
            if key not in models:
                models[key] = (seg.micro_model(gm, piece), seg.input_shape(gm, piece))
    cut_shapes = [tuple(n.meta["tensor_meta"].shape) for n in original.graph.nodes if n.name in set(ends[:-1])]
    say(f"[tune] {len(parts)} segments, {len(models)} distinct forms over {len(lowered)} lowering variants")
    return Candidates(ends, forms, models, cut_shapes, lowered["target"][0])


def _site_segments(original: fx.GraphModule, parts: list[seg.Segment]) -> dict[str, int]:
    """Module path -> index of the segment whose nodes call it, in the graph before lowering."""
    index = {name: i for i, p in enumerate(parts) for name in p.nodes}
    return {n.target: index[n.name] for n in original.graph.nodes if n.op == "call_module" and n.name in index}


def _choices(report, where: dict[str, int], count: int) -> list[dict[str, str]]:
    """Per segment, the form each tuned site took in this variant (kept sites included)."""
    out: list[dict[str, str]] = [{} for _ in range(count)]
    for r in report.decisions():
        if r["pass"] in TUNED_PASSES and r["site"] in where:
            out[where[r["site"]]][f"{r['pass']}:{r['site']}"] = _concrete(r)
    return out


def _concrete(entry: dict) -> str:
    """A report entry's form, with a rule-based merge written as the merge it made."""
    if entry["pass"] == "group_conv" and entry["choice"] == "merge":
        k = entry["macs_after"] // max(1, entry["macs_before"])
        return f"merge_{k}"
    return entry["choice"]


@dataclasses.dataclass(frozen=True)
class Choice:
    """What the table chose for one segment."""

    end: str
    form: Form
    ms: float
    target_ms: float | None   # the target's own lowering of this segment, for comparison
    alternatives: int


def choose(cands: Candidates, table: CostTable) -> tuple[dict[str, str], list[Choice]]:
    """Each segment's fastest measured form, as per-site choices for ``rewrite``."""
    choices: dict[str, str] = {}
    rows = []
    for end, forms in zip(cands.ends, cands.forms):
        timed = {k: table.segment_ms(k) for k in forms}
        timed = {k: v for k, v in timed.items() if v is not None}
        target = next((f for f in forms.values() if f.variant == "target"), None)
        if not timed:
            best = target or next(iter(forms.values()))
            rows.append(Choice(end, best, float("nan"), None, 0))
        else:
            key = min(timed, key=lambda k: (timed[k], forms[k].variant != "target"))
            best = forms[key]
            rows.append(Choice(end, best, timed[key], timed.get(target.key) if target else None, len(timed)))
        choices.update(dict(best.choices))
    return choices, rows


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The table's whole-model latency (``total_ms``: segments less cuts; None while ``missing``
    names what the table lacks) and, where ``price`` timed the built model in the same rounds as
    the segments, that model's ``measured_ms`` and the prediction's error (median of the per-round
    errors, in percent)."""

    total_ms: float | None
    segments_ms: float
    boundaries_ms: float
    missing: tuple[str, ...]
    measured_ms: float | None = None
    error_pct: float | None = None
    rounds: int = 0


def predict(gm: fx.GraphModule, example: torch.Tensor, table: CostTable, ends: list[str]) -> Prediction:
    """Whole-model latency from the table: the segments' times, less what each cut inside the
    model costs twice when its two segments run alone.

    Where the table has the two neighbours timed together (``price`` measures them), a cut's
    share is measured: ``t(a) + t(b) - t(a+b)``, which holds whatever the cut costs in context
    (a kept gather between two ExecuTorch partitions pays layout changes and a delegate call
    that neither segment alone shows). Elsewhere it is estimated: one runtime call and the end
    conversions of a ReLU of the cut's shape alone."""
    seg.shaped(gm, example)
    pieces = seg.segments(gm, keep=set(ends))
    missing, total = [], 0.0
    for p in pieces:
        key, what = seg.describe(gm, p)
        ms = table.segment_ms(key)
        if ms is None:
            missing.append(f"{p.end} ({what})")
        else:
            total += ms
    nodes = {n.name: n for n in gm.graph.nodes}
    keys = [seg.describe(gm, p)[0] for p in pieces]
    edge = 0.0
    for i, p in enumerate(pieces[:-1]):
        both = table.segment_ms(seg.describe(gm, pair_of(p, pieces[i + 1]))[0])
        a, b = table.segment_ms(keys[i]), table.segment_ms(keys[i + 1])
        if both is not None and a is not None and b is not None:
            edge += a + b - both
            continue
        converts = table.converts(keys[i], 1) or table.converts(keys[i + 1], 0)
        ms = table.boundary_ms(tuple(nodes[p.end].meta["tensor_meta"].shape), converts)
        if ms is None:
            missing.append(f"cut {p.end}")
        else:
            edge += ms
    ok = not missing
    return Prediction(total - edge if ok else None, total, edge, tuple(missing))


def pair_of(a: seg.Segment, b: seg.Segment) -> seg.Segment:
    """Two neighbouring segments as one."""
    return seg.Segment(a.start, b.end, a.nodes + b.nodes)


def pending(cands: Candidates, table: CostTable) -> tuple[dict[str, tuple[fx.GraphModule, tuple[int, ...]]], list]:
    """The forms and cut shapes the table has no time for yet."""
    todo = {k: v for k, v in cands.models.items() if table.segment_ms(k) is None}
    wanted = {tuple(s) for s in cands.cut_shapes} | {CALL}
    shapes = sorted(s for s in wanted if boundary_key(s) not in table.boundaries)
    return todo, shapes


def boundary_model() -> nn.Module:
    """What a cut costs when a segment runs alone: a call into the runtime with a ReLU on the cut's tensor."""
    return nn.Sequential(nn.ReLU()).eval()


__all__ = ["Candidates", "Choice", "Form", "Prediction", "boundary_key", "choose", "collect", "fill", "pair_of",
           "pending", "predict", "predict_in_rounds", "price", "priced_models", "tune", "variants"]


@dataclasses.dataclass
class TuneResult:
    """What ``tune`` found: the choices, per-segment rows, and predicted vs measured latency
    (with ``check_whole``: both lowerings built whole and timed in the same rounds as their
    segments; the errors are the medians of the per-round errors)."""

    table: CostTable
    choices: dict[str, str]
    rows: list[Choice]
    predicted_ms: float | None
    predicted_target_ms: float | None
    measured_ms: float | None = None
    measured_target_ms: float | None = None
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    report: list[dict] = dataclasses.field(default_factory=list)
    ends: list[str] = dataclasses.field(default_factory=list)
    error_pct: float | None = None
    target_error_pct: float | None = None
    rounds: int = 0

    def to_json(self) -> dict:
        def err(pred, meas, measured_error):
            if measured_error is not None:
                return measured_error
            return None if pred is None or not meas else round(100.0 * (pred - meas) / meas, 2)

        return {"backend": self.table.backend, "threads": self.table.threads, "machine": self.table.machine,
                "runtime": self.table.runtime,
                "latency_ms": {"tuned": {"predicted": self.predicted_ms, "measured": self.measured_ms,
                                         "error_pct": err(self.predicted_ms, self.measured_ms, self.error_pct)},
                               "target": {"predicted": self.predicted_target_ms, "measured": self.measured_target_ms,
                                          "error_pct": err(self.predicted_target_ms, self.measured_target_ms,
                                                           self.target_error_pct)},
                               "rounds": self.rounds},
                "segments": [{"end": r.end, "form": r.form.what, "variant": r.form.variant,
                              "ms": None if r.ms != r.ms else r.ms, "target_ms": r.target_ms,
                              "forms_timed": r.alternatives} for r in self.rows],
                "tuned_is_faster": (None if not (self.measured_ms and self.measured_target_ms)
                                    else self.measured_ms <= self.measured_target_ms),
                "choices": dict(sorted(self.choices.items())), "failed_forms": self.failed}


CHECK_ROUNDS = 3
"""Fewest interleaved rounds in which ``tune``'s check times the whole models beside their segments."""


def tune(model: nn.Module, base: LoweringConfig, example: torch.Tensor, table: CostTable, timer,
         say: Callable[[str], None] = print, check_whole: bool = True) -> TuneResult:
    """Measure what ``table`` lacks for ``model``, choose each segment's fastest form, predict
    the whole model's latency, and (``check_whole``) build the model both ways (tuned, and the
    target's own rules) and time both in the same rounds as every segment and neighbour pair
    they are predicted from, so each prediction is compared with a measurement of the same
    moments and the two lowerings with each other."""
    from edgecn.cost.measure import compile_all
    from edgecn.passes import rewrite

    cands = collect(model, base, example, say)
    with tempfile.TemporaryDirectory(prefix="edgecn-tune-") as tmp:
        folder = Path(tmp)
        failed = fill(table, cands, timer, say, keep=folder)
        choices, rows = choose(cands, table)
        tuned, report = rewrite(model, base, example, choices=choices)
        target = cands.target
        result = TuneResult(table, choices, rows, predict(tuned, example, table, cands.ends).total_ms,
                            predict(target, example, table, cands.ends).total_ms, failed=failed, report=report,
                            ends=cands.ends)
        if not check_whole:
            return result
        shape = tuple(example.shape)
        say("[tune] building the model both ways to check the prediction")
        (folder / "whole").mkdir()
        wholes, failed_whole, _ = compile_all({"whole-tuned": (tuned, shape), "whole-target": (target, shape)},
                                              timer, folder / "whole", say)
        result.failed.update(failed_whole)
        check = dataclasses.replace(timer, rounds=max(CHECK_ROUNDS, timer.rounds))
        found = predict_in_rounds({"tuned": tuned, "target": target}, example, table, cands.ends, check, say, folder,
                       wholes={n: wholes[f"whole-{n}"] for n in ("tuned", "target") if f"whole-{n}" in wholes})
    for name, p in found.items():
        if name == "tuned":
            result.predicted_ms, result.measured_ms, result.error_pct = p.total_ms, p.measured_ms, p.error_pct
        else:
            result.predicted_target_ms, result.measured_target_ms = p.total_ms, p.measured_ms
            result.target_error_pct = p.error_pct
        result.rounds = max(result.rounds, p.rounds)
    return result


def price(model: nn.Module, base: LoweringConfig, example: torch.Tensor, table: CostTable, timer,
          say: Callable[[str], None] = print, keep=None, retime: bool = False, whole=None,
          measure_missing: bool = True) -> Prediction:
    """The table's whole-model latency of ``model`` lowered by the target's own rules, measuring
    only that lowering's segments where ``table`` lacks them (what the benchmark compares with
    the measured artifact).

    ``keep``: folder where the compiled segments stay; ``retime``: time every segment of this
    model again from those files (no compiling) before predicting, for a table filled while
    the machine was busy; ``whole``: the built artifact of the model, timed in the same rounds
    as those segments, so that the prediction is compared with a measurement of the same
    moments (a machine that drifts between two runs would otherwise decide the error);
    ``measure_missing=False``: compile nothing, predict from what the table has (``missing``
    lists the rest)."""
    cands = collect(model, base, example, say, only_target=True)
    gm = cands.target
    models = {}
    for key, (sub, shape, what) in priced_models(gm, cands.ends).items():
        if key in cands.models:
            models[key] = cands.models[key]
        else:  # each cut priced in context: its two neighbours timed together
            models[key] = (sub, shape)
            cands.pairs[key] = what
    cands.models = {**models, **cands.models}  # in model order, each pair beside its two segments
    cands.cut_shapes = []  # the pairs price every cut
    if measure_missing:
        fill(table, cands, timer, say, keep=keep)
    if not (retime and keep is not None):
        return predict(gm, example, table, cands.ends)
    return predict_in_rounds({"model": gm}, example, table, cands.ends, timer, say, Path(keep),
                             wholes={"model": whole} if whole is not None else {}, compile_missing=False)["model"]


def priced_models(gm: fx.GraphModule, ends: list[str]) -> dict[str, tuple[fx.GraphModule, tuple[int, ...], str]]:
    """What ``predict`` reads for ``gm``: each segment and each pair of neighbours, as
    ``{key: (micro-model, input shape, short text)}``, in the order they are timed.

    That order is the model's, each pair right after its second segment (s0, s1, s0+s1, s2,
    s1+s2, ...): a cut's price is a small difference of three times, so the three are taken
    within seconds of each other. Timed as all segments and then all pairs, a machine that got
    faster or slower between the two halves of a round moved every cut price the same way: the
    pairs add up to about twice the model and the segments they share to once, so a 5% change
    of speed between the halves moved the prediction by about 10%."""
    pieces = seg.segments(gm, keep=set(ends))
    out = {}
    for i, p in enumerate(pieces):
        key, what = seg.describe(gm, p)
        out.setdefault(key, (seg.micro_model(gm, p), seg.input_shape(gm, p), what))
        if i == 0:
            continue
        both = pair_of(pieces[i - 1], p)
        key, _ = seg.describe(gm, both)
        if key not in out:
            out[key] = (seg.micro_model(gm, both), seg.input_shape(gm, both),
                        f"{seg.describe(gm, pieces[i - 1])[1]} | {what}")
    return out


def predict_in_rounds(graphs: dict[str, fx.GraphModule], example: torch.Tensor, table: CostTable, ends: list[str], timer,
           say: Callable[[str], None], folder: Path, wholes: dict[str, Path] | None = None,
           compile_missing: bool = True) -> dict[str, Prediction]:
    """Time every segment and neighbour pair of each of ``graphs`` again, in ``timer.rounds``
    interleaved rounds, with each built model of ``wholes`` (same names as ``graphs``) among
    them at the start, middle and end of every round; predict each graph per round and compare.

    The compiled files come from ``folder`` (``measure(..., keep=folder)``); with
    ``compile_missing`` the ones it lacks are compiled there first (a table from an earlier
    run has times but no files), else only what has a file and a time is timed again. The
    median of the rounds replaces each time in ``table``."""
    from edgecn.cost.measure import compile_all, kept_files, time_rounds

    wholes = dict(wholes or {})
    needed: dict[str, tuple] = {}
    for gm in graphs.values():
        for key, item in priced_models(gm, ends).items():
            needed.setdefault(key, item)
    files = kept_files(folder, needed)
    io: dict[str, list[str]] = {}
    if compile_missing:
        todo = {k: v[:2] for k, v in needed.items() if k not in files}
        if todo:
            say(f"[tune] compiling {len(todo)} segment(s) and pair(s) to time them beside the whole model")
            new, _, io = compile_all(todo, timer, folder, say)
            files.update(new)
    else:
        files = {k: f for k, f in files.items() if k in table.segments}
    if not files:
        return {name: predict(gm, example, table, ends) for name, gm in graphs.items()}
    say(f"[tune] timing {len(files)} file(s) again, {timer.rounds} round(s)"
        + (f", {' and '.join(Path(w).name for w in wholes.values())} {WHOLE_TIMES} times in each" if wholes else ""))
    with tempfile.TemporaryDirectory(prefix="edgecn-price-") as tmp:
        rounds, _ = time_rounds(_with_wholes(files, wholes, Path(tmp)), timer)
    measured = {name: [statistics.fmean(times) for times in
                       zip(*[rounds.pop(f"{WHOLE}-{name}-{i}") for i in range(WHOLE_TIMES)])] for name in wholes}
    for key in rounds:
        if key not in table.segments:
            table.segments[key] = {"ms": 0.0, "what": needed[key][2], "io": io.get(key)}
    per_round: dict[str, list] = {name: [] for name in graphs}
    for r in range(len(next(iter(rounds.values()), []))):
        for key, ms in rounds.items():
            table.segments[key]["ms"] = round(ms[r], 5)
        for name, gm in graphs.items():
            per_round[name].append(predict(gm, example, table, ends))
    for key, ms in rounds.items():
        table.segments[key]["ms"] = round(statistics.median(ms), 5)
    out = {}
    for name, gm in graphs.items():
        p = predict(gm, example, table, ends)
        if name in measured and measured[name] and p.total_ms is not None:
            # the prediction and the measurement as medians of the same rounds, so that the
            # two figures shown agree with the error between them (median of per-round errors)
            preds = [q for q in per_round[name] if q.total_ms is not None]
            errors = [100.0 * (q.total_ms - meas) / meas for q, meas in zip(per_round[name], measured[name])
                      if q.total_ms is not None]
            p = dataclasses.replace(p, total_ms=statistics.median(q.total_ms for q in preds),
                                    segments_ms=statistics.median(q.segments_ms for q in preds),
                                    boundaries_ms=statistics.median(q.boundaries_ms for q in preds),
                                    measured_ms=statistics.median(measured[name]), rounds=len(measured[name]),
                                    error_pct=round(statistics.median(errors), 2) if errors else None)
        out[name] = p
    return out


def _with_wholes(files: dict[str, Path], wholes: dict[str, Path], folder: Path) -> dict[str, Path]:
    """``files`` with each whole model at the start, in the middle and at the end (links of their
    own names, so the runner tells them apart): a round of many segments lasts long enough for
    the machine's speed to change within it, and the segments are compared with the mean of the three."""
    if not wholes:
        return files
    names = list(files)
    spots = [round(i * len(names) / (WHOLE_TIMES - 1)) for i in range(WHOLE_TIMES)]
    out: dict[str, Path] = {}
    for pos in range(len(names) + 1):
        for i in (i for i, at in enumerate(spots) if at == pos):
            for name, whole in wholes.items():
                link = folder / f"{WHOLE}-{name}-{i}{Path(whole).suffix}"
                try:
                    link.symlink_to(Path(whole).resolve())
                except OSError:  # no symlinks here: a copy
                    shutil.copyfile(whole, link)
                out[f"{WHOLE}-{name}-{i}"] = link
        if pos < len(names):
            out[names[pos]] = files[names[pos]]
    return out


WHOLE_TIMES = 3
"""How often each whole model is timed in a round of ``predict_in_rounds`` (start, middle, end)."""
WHOLE = "whole-model"


def fill(table: CostTable, cands: Candidates, timer, say: Callable[[str], None] = print,
         keep=None) -> dict[str, str]:
    """Time every form and cut shape of ``cands`` that ``table`` lacks, into ``table``; the forms
    that failed. ``keep``: see ``measure``."""
    from edgecn.cost.measure import measure

    failed: dict[str, str] = {}
    for _ in range(2):  # a second round only when the first found the table from another machine
        todo, shapes = pending(cands, table)
        todo = {k: v for k, v in todo.items() if k not in failed}
        if not todo and not shapes:
            break
        items = dict(todo)
        items.update({f"cut-{boundary_key(s)}": (boundary_model(), s) for s in shapes})
        say(f"[tune] {len(todo)} form(s) and {len(shapes)} cut shape(s) to measure "
            f"({len(cands.models) - len(todo)} already in the table)")
        times, new_failures, where = measure(items, timer, say, keep=keep)
        failed.update(new_failures)
        dropped = _merge(table, where, say) if where else False
        _record(table, cands, shapes, times, where.get("io") or {})
        if not dropped:
            break
    return failed


def _record(table: CostTable, cands: Candidates, shapes: list, times: dict[str, float], io: dict) -> None:
    what = {f.key: f.what for forms in cands.forms for f in forms.values()}
    what.update(cands.pairs)
    by_cut = {f"cut-{boundary_key(s)}": s for s in shapes}
    for name, ms in times.items():
        if name in by_cut:
            table.boundaries[boundary_key(by_cut[name])] = {"ms": round(ms, 5), "shape": list(by_cut[name])}
        else:
            table.segments[name] = {"ms": round(ms, 5), "what": what[name], "io": io.get(name)}


def _merge(table: CostTable, where: dict, say) -> bool:
    """Adopt the measuring machine's identity; entries from another machine, runtime or edgecn
    compile path (``measure.compile_revision``) are dropped, not mixed."""
    from edgecn.cost.table import machine_fingerprint

    env = where["environment"]
    machine = {k: env.get(k) for k in ("device", "cpu", "isa", "cores")}
    runtime = dict(where.get("versions") or {})
    if where.get("compiled_by"):
        runtime["edgecn-compile"] = where["compiled_by"]  # segments compiled another way run differently
    if (table.segments or table.boundaries) and machine_fingerprint(machine, runtime) != table.fingerprint():
        say(f"[tune] the table was measured on {table.machine.get('cpu')!r} with {table.runtime}; this device is "
            f"{machine.get('cpu')!r} with {runtime}: starting a new table")
        table.segments.clear()
        table.boundaries.clear()
        table.machine, table.runtime = machine, runtime
        return True
    table.machine, table.runtime = machine, runtime
    return False
