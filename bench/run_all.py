"""Every benchmark in one run: ``make bench`` (or ``python bench/run_all.py``).

Builds (or takes from bench/.cache/) edgecn's artifacts and what a user would export
instead, times them interleaved at each thread setting (one process per artifact and
setting), measures held-out top-1 where the weights are trained, the runner's overhead
and the int8 multiply-add rate against a large int8 convolution, then writes
bench/results/<date>-<host>.json and .md, the accuracy/latency PNG, and the Benchmarks
section of README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import sys
import time
from pathlib import Path

import report
import timing
import variants

HERE = Path(__file__).resolve().parent

CACHE = HERE / ".cache"
RESULTS = HERE / "results"
TRAINED_SIZE = 32
"""Input side the trained model (on the default data, digits) is trained and benchmarked at."""
GROUPS = (
    # (models timed together, interleaved); the baseline rides with the model it is compared to.
    ("condensenet-86", "densenet-bc-100"),
    ("squeezenet1_1",),
    ("condensenet-74-c8",),
    ("condensenet-74-c4",),
)
DENSENET_224 = "densenet-121"
PREDICTION_ROUNDS = 3
"""Interleaved rounds in which the cost table's segments and the built model are timed together."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="thread settings, comma list (default 1,2)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved repetitions (default 5)")
    p.add_argument("--seconds", type=float, default=0.4, help="timing window per artifact and round (default 0.4)")
    p.add_argument("--min-runs", type=int, default=3, help="fewest inferences per window (default 3)")
    p.add_argument("--budget-min", type=float, default=15.0,
                   help="skip the remaining model groups once this many minutes have passed (default 15)")
    p.add_argument("--densenet-121", action="store_true", help="also build and time DenseNet-121 at 224 (slow)")
    p.add_argument("--only", default=None, help="comma list of group heads to run (e.g. condensenet-86)")
    p.add_argument("--trained", default="condensenet-86", help="model trained on digits for real accuracy "
                   "(heads the first group; default condensenet-86)")
    p.add_argument("--backends", default="executorch,tflite", help="comma list (default executorch,tflite)")
    p.add_argument("--report-only", default=None, metavar="JSON",
                   help="only rewrite the markdown, PNG and README from an earlier results JSON")
    p.add_argument("--epochs", type=int, default=6, help="its training epochs (default 6)")
    p.add_argument("--cached-only", action="store_true",
                   help="build nothing: time what bench/.cache holds and list the rest as not built")
    p.add_argument("--build-only", action="store_true",
                   help="only train and build into bench/.cache (no timing); run the timing later on a quiet machine")
    return p.parse_args(argv)


def main(argv=None) -> int:
    import torch

    args = parse_args(argv)
    if args.report_only:
        write(json.loads(Path(args.report_only).read_text()), Path(args.report_only).stem)
        return 0
    torch.set_num_threads(1)  # building is not timed; leave the other core to the machine's other users
    start = time.time()
    threads = [int(t) for t in args.threads.split(",")]
    doc = {"format": "edgecn-bench", "version": 1, "started": _now(), "machine": machine(), "settings": vars(args),
           "load_avg_start": os.getloadavg(), "models": {}, "skipped": [], "failed": {}}
    peak = variants.peak_conv(CACHE)
    trained, held = train_reference(args.trained, args.epochs) if needs_trained(args) else (None, None)
    if trained is not None:
        doc["trained"] = {"model": args.trained, "data": "digits", "input_size": TRAINED_SIZE,
                          "epochs": args.epochs, "heldout_images": int(len(held[1]))}
    if args.build_only:
        for group in _groups(args):
            for name in group:
                s = subject_for(name, trained)
                variants.build_subject(s, CACHE, forms=None if name == group[0] else ("naive",),
                                       backends=tuple(args.backends.split(",")), failed=doc["failed"])
                if name == group[0]:
                    predictions(s, tuple(args.backends.split(",")), retime=False)
        _record_build(start, time.time(), args.only)
        print(f"[bench] built into {CACHE} in {time.time() - start:.0f} s")
        return 0
    built: dict[str, list] = {}  # per model, the artifacts of this run: accuracy is scored on exactly these
    for group in _groups(args):
        if time.time() - start > args.budget_min * 60:
            doc["skipped"] += list(group)
            print(f"[bench] over the {args.budget_min:g} min budget: skipping {', '.join(group)}")
            continue
        built.update(run_group(group, trained, peak if group[0] == args.trained else [], threads, args, doc,
                               deadline=0.0 if args.cached_only else start + args.budget_min * 60))
    doc["peak"] = peak_figures(doc)
    doc["accuracy"] = accuracies(trained, held, built.get(trained.name, []), doc)
    doc["trained"]["build"] = trained_build(trained)
    doc["runner_overhead"] = runner_overhead(_built_path(built, args.trained, "edgecn", "int8", "tflite"))
    doc["gather_cost"] = gather_cost()
    doc["load_avg_end"], doc["seconds"] = os.getloadavg(), round(time.time() - start, 1)
    doc["cache_build"] = last_build()
    write(doc)
    return 0


def _groups(args) -> list[tuple[str, ...]]:
    groups = [(args.trained,) + GROUPS[0][1:]] + list(GROUPS[1:])
    if args.densenet_121:
        groups[-1] = groups[-1] + (DENSENET_224,)
    if args.only:
        wanted = set(args.only.split(","))
        groups = [g for g in groups if g[0] in wanted]
    return groups


def needs_trained(args) -> bool:
    """Whether this run needs the trained model: a timed run always does (its held-out top-1 is
    scored); a ``--build-only`` run only when its groups include the trained model, so build
    processes side by side (``--only``) do not each train it."""
    return not args.build_only or any(g[0] == args.trained for g in _groups(args))


def trained_checkpoint(name: str, epochs: int) -> Path:
    """The trained model's final.pt, trained on first use. Build processes side by side take turns on
    a lock file of their own (not ``edgecn.fileio``'s lock on the cache folder, which guards the
    swaps of what they build there and must not wait minutes on a training), so one trains and the
    others wait for its checkpoint."""
    import fcntl

    from edgecn.train import TrainConfig, train

    out = CACHE / f"train-{name}-e{epochs}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".train-{name}-e{epochs}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (out / "final.pt").exists():
            print(f"[bench] training {name} on digits at {TRAINED_SIZE}x{TRAINED_SIZE} for {epochs} epochs "
                  "(cached afterwards)")
            train(TrainConfig(model=name, data="digits", input_size=TRAINED_SIZE, epochs=epochs, out_dir=str(out),
                              overwrite=True), progress=False)
    return out / "final.pt"


def train_reference(name: str, epochs: int):
    """The trained Subject (trained once, cached) and its held-out images: (x, y) numpy and torch."""
    from edgecn.train.data import load_dataset

    checkpoint = trained_checkpoint(name, epochs)
    ds = load_dataset("digits", input_size=TRAINED_SIZE)
    from edgecn.quantize.calibration import from_dataset, load_recipe

    calib = from_dataset(ds.train, load_recipe("default"))
    s = variants.subject(name, checkpoint, calib, trained=True)
    x, y = ds.heldout.tensors
    return s, (x.numpy(), y.numpy(), x, y)


def trained_build(s) -> dict | None:
    """What ``edgecn build`` recorded for the trained model: each artifact's held-out top-1 in its
    own runtime and its logit SQNR against the float model (the goal: int8 within 1 point, >= 20 dB)."""
    doc = variants.edgecn_manifest(s, CACHE)
    if doc is None:
        return None
    keys = ("backend", "precision", "top1", "sqnr_db", "calibration_method")
    return {"float_top1": doc.get("float_top1"), "failed": doc.get("failed") or [],
            "artifacts": [{k: a.get(k) for k in keys} for a in doc.get("artifacts", [])]}


def subject_for(name: str, trained):
    return trained if trained is not None and name == trained.name else variants.untrained(name, CACHE)


def run_group(group, trained, peak, threads, args, doc, deadline: float) -> dict[str, list]:
    """Build every model of ``group``, then time all their artifacts together; the artifacts per model."""
    subjects = {n: subject_for(n, trained) for n in group}
    arts, by_model = [], {}
    for name, s in subjects.items():
        forms = ("naive",) if name != group[0] else None  # baselines: what a user gets exporting them
        built = variants.build_subject(s, CACHE, forms=forms, backends=tuple(args.backends.split(",")),
                                       deadline=deadline, skipped=doc["skipped"], failed=doc["failed"])
        arts += built
        by_model[name] = built
        doc["models"][name] = {"baseline_for": None if name == group[0] else group[0], "real_macs": variants.real_macs(s),
                               "predicted_ms": predictions(s, tuple(args.backends.split(",")), retime=True,
                                                           built=built, compile_missing=not args.cached_only)
                               if name == group[0] else {},
                               "variants": {
            v.key: {"form": v.form, "backend": v.backend, "precision": v.precision, "macs": v.macs,
                    "size_bytes": v.path.stat().st_size, "ops": v.meta.get("ops"),
                    "delegation": _delegation(v), "rewrites": v.meta.get("rewrites"), "kept": v.meta.get("kept"),
                    "latency_ms": {}, "rounds_ms": {}} for v in built}}
    arts += peak
    if peak:
        doc["models"]["conv3x3-256"] = {"baseline_for": None, "variants": {
            v.key: {"form": v.form, "backend": v.backend, "precision": v.precision, "macs": v.macs,
                    "latency_ms": {}, "rounds_ms": {}} for v in peak}}
    for t in threads:
        print(f"[bench] timing {len(arts)} artifacts of {', '.join(group)} at {t} thread(s), {args.rounds} rounds")
        rounds = timing.interleaved({v.key: v.path for v in arts}, t, args.rounds, args.seconds, args.min_runs)
        for v in arts:
            entry = doc["models"][v.model]["variants"][v.key]
            entry["rounds_ms"][str(t)] = rounds[v.key]
            entry["latency_ms"][str(t)] = timing.summary(rounds[v.key])
    return by_model


def predictions(s, backends: tuple[str, ...], retime: bool, built: list | None = None,
                compile_missing: bool = True) -> dict:
    """Per backend, the cost table's whole-model latency of edgecn's lowering of ``s`` at 1 thread.

    The table (bench/.cache/costs/, one per backend and edgecn source revision) gets the
    segments it lacks compiled and timed by ``edgecn.cost`` (what ``edgecn tune`` does); the
    compiled segments stay beside it, and ``retime`` (the timed run) times them all again, so
    that the prediction is taken on the same quiet machine as the measurement it is compared
    with, not during the build: in PREDICTION_ROUNDS interleaved rounds, together with the
    model's built int8 artifact (from ``built``), whose time in those rounds the prediction's
    error is taken against. ``compile_missing=False`` (``--cached-only``) compiles nothing: a
    backend whose model was not built is left out, and segments the table lacks are listed
    as missing. Timed minutes apart, the same file here moved by up to 1.35x (the
    machine changes speed while it runs), more than the error being measured.
    """
    from edgecn.cost.measure import Timer
    from edgecn.cost.table import CostTable, load_table
    from edgecn.cost.tune import price
    from edgecn.lowering import LoweringConfig
    from edgecn.targets import get_target

    target = get_target(variants.TARGET)
    out = {}
    for backend in backends:
        path = CACHE / "costs" / f"{backend}-1t-{variants._tree_rev()}-{variants._lowering_rev()}.json"
        keep = path.with_suffix(".files")
        table = load_table(path) if path.exists() else CostTable(backend, 1)
        timer = Timer(backend, target.options(backend), threads=1, runs=50, rounds=PREDICTION_ROUNDS)
        whole = next((v.path for v in built or [] if (v.form, v.precision, v.backend) == ("edgecn", "int8", backend)),
                     None)
        if whole is None and not compile_missing:
            continue
        start = time.time()
        p = price(s.condensed, LoweringConfig.from_dict(target.lowering, backend), s.example, table, timer,
                  say=lambda m: print(m, flush=True), keep=keep, retime=retime, whole=whole,
                  measure_missing=compile_missing)
        if path.exists():  # another benchmark process may have added entries since this one loaded
            on_disk = load_table(path)
            if on_disk.fingerprint() == table.fingerprint():
                table.segments = {**on_disk.segments, **table.segments}
                table.boundaries = {**on_disk.boundaries, **table.boundaries}
        table.save(path)
        out[backend] = {"ms": p.total_ms, "segments_ms": p.segments_ms, "boundaries_ms": p.boundaries_ms,
                        "missing": list(p.missing), "table": os.path.relpath(path, HERE.parent),
                        "measured_ms": p.measured_ms, "error_pct": p.error_pct, "rounds": p.rounds}
        print(f"[bench] {s.name} {backend}: cost table predicts {p.total_ms} ms"
              + (f", measured {p.measured_ms:.3f} ms in the same rounds ({p.error_pct:+.1f}%)" if p.error_pct is not None else "")
              + f" ({time.time() - start:.0f} s)")
    return out


def _delegation(v) -> dict:
    extra = v.meta.get("extra") or {}
    keys = ("partitions", "non_delegated", "xnnpack_partitions")
    return {k: extra[k] for k in keys if k in extra}


def peak_figures(doc) -> dict:
    """Multiply-adds per second of each int8 edgecn artifact against the single large int8 conv."""
    conv = doc["models"].get("conv3x3-256")
    if not conv:
        return {}
    out = {}
    for pv in conv["variants"].values():
        for t, lat in pv["latency_ms"].items():
            peak_rate = pv["macs"] / (lat["median"] / 1e3)
            out[f"{pv['backend']}/{t}"] = {"macs_per_s": peak_rate, "models": {}}
            for name, m in doc["models"].items():
                for v in m["variants"].values():
                    if v["form"] == "edgecn" and v["precision"] == "int8" and v["backend"] == pv["backend"] \
                            and t in v["latency_ms"]:
                        # the model's own multiply-adds, not those its lowering adds (merged groups, folded gathers)
                        rate = m.get("real_macs", v["macs"]) / (v["latency_ms"][t]["median"] / 1e3)
                        out[f"{pv['backend']}/{t}"]["models"][name] = {"macs_per_s": rate, "share": rate / peak_rate}
    return out


def accuracies(trained, held, built: list, doc) -> dict:
    """Held-out top-1 of the trained model: eager forms and every built artifact of it."""
    import accuracy

    x, y, xt, yt = held
    out = {"eager/train-fp32": accuracy.eager_top1(trained.train_form, xt, yt),
           "eager/condensed-fp32": accuracy.eager_top1(trained.condensed, xt, yt)}
    for v in built:
        out[v.key], n = accuracy.artifact_top1(v, x, y)
        entry = doc["models"][v.model]["variants"][v.key]
        entry["top1"], entry["top1_images"] = out[v.key], n
        print(f"[bench] top-1 {v.key}: {out[v.key]:.2f}% ({n} of {len(y)} images)")
    return out


def _built_path(built: dict[str, list], model: str, form: str, precision: str, backend: str) -> Path | None:
    return next((v.path for v in built.get(model, []) if (v.form, v.precision, v.backend) == (form, precision, backend)),
                None)


def gather_cost() -> dict:
    """bench/gather_cost.py: what a kept gather costs here, the figure the targets' [lowering] uses."""
    import gather_cost as measure_gather

    print("[bench] measuring what a kept channel gather costs (bench/gather_cost.py)")
    return measure_gather.measure()


def runner_overhead(artifact: Path | None) -> dict:
    """bench/runner_overhead.py on a real built artifact: the runner against a bare invoke loop."""
    import runner_overhead as overhead

    if artifact is None:
        return {"skipped": "the trained model's edgecn int8 .tflite was not built in this run"}
    result = overhead.measure(artifact, runs=300, rounds=5, say=lambda *_: None)
    return {**result, "artifact": os.path.relpath(artifact, HERE.parent),
            "command": result["command"].replace(str(HERE.parent) + "/", "")}


def machine() -> dict:
    from edgecn.runner import sysinfo

    return {"host": socket.gethostname(), "cpu": sysinfo.cpu_model(), "isa": sysinfo.isa_flags(), "cores": os.cpu_count(),
            "python": sys.version.split()[0], "versions": _versions()}


def _versions() -> dict:
    from edgecn.backends import package_versions

    return package_versions("torch", "executorch", "torchao", "litert-torch", "ai-edge-litert", "onnxruntime", "numpy")


BUILDS = CACHE / "builds.jsonl"
"""One line per ``--build-only`` run: when it started and finished, and what it built."""


def _record_build(start: float, end: float, only: str | None) -> None:
    CACHE.mkdir(exist_ok=True)
    entry = {"started": start, "finished": end, "seconds": round(end - start, 1), "only": only,
             "cpu": machine().get("cpu")}
    with open(BUILDS, "a") as f:
        f.write(json.dumps(entry) + "\n")


def last_build() -> dict | None:
    """The latest cache build: the ``--build-only`` runs that overlapped in time with the last one
    (processes started side by side), as wall seconds from the first start to the last finish."""
    if not BUILDS.exists():
        return None
    runs = []
    for line in BUILDS.read_text().splitlines():
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue
    runs = sorted((r for r in runs if isinstance(r, dict) and "started" in r and "finished" in r),
                  key=lambda r: r["started"])
    if not runs:
        return None
    group, end = [], float("-inf")
    for r in runs:  # runs sorted by start: a chain of overlapping runs is one build
        if r["started"] > end:
            group, end = [], r["finished"]
        group.append(r)
        end = max(end, r["finished"])
    first, last = min(r["started"] for r in group), max(r["finished"] for r in group)
    stamp = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")
    return {"seconds": round(last - first, 1), "processes": len(group), "started": stamp(first),
            "finished": stamp(last), "only": [r.get("only") for r in group], "cpu": group[0].get("cpu")}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _new_stem(day: str, host: str) -> str:
    """``<day>-<host>``, or ``<day>b-<host>``, ``<day>c-<host>``... : a later run of the day never
    overwrites an earlier one's results."""
    for suffix in ("",) + tuple("bcdefghijklmnopqrstuvwxyz"):
        stem = f"{day}{suffix}-{host}"
        if not any((RESULTS / f"{stem}{ext}").exists() for ext in (".json", ".md")):
            return stem
    return f"{day}-{host}-{int(time.time())}"


def write(doc: dict, stem: str | None = None) -> None:
    """results/<date>-<host>.json and .md, the PNG, and README's Benchmarks section."""
    from edgecn.fileio import atomic_write_text

    RESULTS.mkdir(exist_ok=True)
    stem = stem or _new_stem(datetime.date.today().isoformat(), socket.gethostname())
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps(doc, indent=1) + "\n")
    png = RESULTS / "accuracy-latency.png"
    report.plot(doc, png)
    planned = tuple(dict.fromkeys((doc.get("trained", {}).get("model", ""),) + tuple(m for g in GROUPS for m in g)
                                  + (DENSENET_224,)))
    md = report.markdown(doc, png.name, tuple(m for m in planned if m))
    atomic_write_text(RESULTS / f"{stem}.md", md)
    report.update_readme(HERE.parent / "README.md", md, f"bench/results/{stem}.md", "bench/results/" + png.name, doc)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
