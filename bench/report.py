"""The benchmark's markdown table, the accuracy/latency PNG and README's Benchmarks section."""

from __future__ import annotations

from pathlib import Path

from timing import ratios, summary

README_HEADING = "## Benchmarks"
GENERATED = "`make bench` (`python bench/run_all.py`)"
"""Where the generated part of README's Benchmarks section starts."""
FORM_LABELS = {
    "edgecn": "edgecn (condensed, rewritten)",
    "train": "training form exported as is",
    "naive": "condensed, exported as is",
    "previous": "previous rpi5 lowering (native groups)",
    "ort": "ONNX of the condensed model in onnxruntime",
    "peak": "one 3x3 conv 256->256 at 56x56",
}


def _reference(m: dict, backend: str) -> dict | None:
    for v in m["variants"].values():
        if v["form"] == "edgecn" and v["precision"] == "int8" and v["backend"] == backend:
            return v
    return None


def _cell(v: dict, ref: dict | None, t: str) -> str:
    if t not in v.get("rounds_ms", {}):
        return "not timed | -"
    lat = v["latency_ms"][t]
    ms = f"{lat['median']:.2f} ({lat['q1']:.2f}-{lat['q3']:.2f})"
    if ref is None or ref is v or t not in ref.get("rounds_ms", {}):
        return f"{ms} | reference" if ref is v else f"{ms} | -"
    r = summary(ratios(v["rounds_ms"][t], ref["rounds_ms"][t]))
    verdict = "" if r["median"] > 1.0 else " **not faster**"
    return f"{ms} | {r['median']:.2f}x [{r['min']:.2f}-{r['max']:.2f}]{verdict}"


SUMMARY = (("train", "fp32", "training form fp32"), ("train", "int8", "training form int8"),
           ("naive", "fp32", "condensed as is fp32"), ("naive", "int8", "condensed as is int8"),
           ("previous", "int8", "previous rpi5 lowering int8"),
           ("edgecn", "fp32", "edgecn fp32"), ("baseline", "fp32", "DenseNet-BC fp32"),
           ("baseline", "int8", "DenseNet-BC int8"), ("ort", "fp32", "onnxruntime fp32"),
           ("ort", "int8", "onnxruntime int8"))
GOALS = {"condensenet-74-c8": (("ort", "fp32", 2.5), ("previous", "int8", 1.8), ("peak", None, 0.10))}
"""The speed goals, at 1 thread: edgecn int8 this many times faster than a form, or this share of the int8 peak."""
PREDICTION_TOLERANCE = 0.10
GATHER_OPS = ("GATHER", "GATHER_ND", "aten.index_select")
"""A channel gather as each runtime names it (on .tflite, channel shuffles are gathers too)."""


def summary_table(doc: dict, t: str) -> list[str]:
    """One row per model and backend: edgecn int8's latency, its share of the runtime's int8 peak,
    the cost table's prediction, and how many times faster it is than each alternative."""
    head = (f"| model | backend | edgecn int8 ms ({t}T) | % of int8 peak | cost table predicts (error) | top-1 % | "
            "gather ops in it | " + " | ".join(label for *_, label in SUMMARY) + " |")
    rows = [head, "|" + "---|" * (7 + len(SUMMARY))]
    for name, m in doc["models"].items():
        if m.get("baseline_for") or name == "conv3x3-256":
            continue
        baselines = [b for b in doc["models"].values() if b.get("baseline_for") == name]
        for backend in ("executorch", "tflite"):
            ref = _reference(m, backend)
            if ref is None or t not in ref.get("rounds_ms", {}):
                continue
            cells = []
            for form, precision, _ in SUMMARY:
                pool = [v for b in baselines for v in b["variants"].values()] if form == "baseline" else \
                    list(m["variants"].values())
                want = "naive" if form == "baseline" else form
                other = next((v for v in pool if v["form"] == want and v["precision"] == precision
                              and v["backend"] in (backend, "onnxruntime") and t in v.get("rounds_ms", {})), None)
                if other is None:
                    cells.append("-")
                    continue
                r = summary(ratios(other["rounds_ms"][t], ref["rounds_ms"][t]))
                cells.append(f"{r['median']:.2f}x" + ("" if r["median"] > 1.0 else " **not faster**"))
            kept = sum((ref.get("ops") or {}).get(op, 0) for op in GATHER_OPS)
            top1 = _top1(ref, doc)
            rows.append(f"| {name} | {backend} | {ref['latency_ms'][t]['median']:.2f} | {_peak_share(doc, name, backend, t)} "
                        f"| {_prediction(m, ref, backend, t)} | {top1} | {kept} | " + " | ".join(cells) + " |")
    return rows


def _peak_share(doc: dict, name: str, backend: str, t: str) -> str:
    share = doc.get("peak", {}).get(f"{backend}/{t}", {}).get("models", {}).get(name, {}).get("share")
    return "-" if share is None else f"{100 * share:.1f}%"


def _prediction(m: dict, ref: dict, backend: str, t: str) -> str:
    p = (m.get("predicted_ms") or {}).get(backend)
    if t != "1" or not p:
        return "-"
    if p.get("ms") is None:
        return f"incomplete ({len(p.get('missing') or [])} segments not timed)"
    if p.get("error_pct") is not None:  # against the artifact timed in the same rounds as the segments
        err = p["error_pct"] / 100
        against = f" of {p['measured_ms']:.2f}"
    else:
        err = (p["ms"] - ref["latency_ms"][t]["median"]) / ref["latency_ms"][t]["median"]
        against = ""
    flag = "" if abs(err) <= PREDICTION_TOLERANCE else " **off by more than 10%**"
    return f"{p['ms']:.2f} ({100 * err:+.1f}%{against}){flag}"


def goal_lines(doc: dict) -> list[str]:
    """Each speed goal at 1 thread, met or not, from this run's paired rounds."""
    out = []
    for name, goals in GOALS.items():
        m = doc["models"].get(name)
        if not m:
            out.append(f"- {name}: not in this run, so its goals were not checked.")
            continue
        for backend in ("tflite", "executorch"):
            ref = _reference(m, backend)
            if ref is None or "1" not in ref.get("rounds_ms", {}):
                continue
            for form, precision, want in goals:
                if form == "peak":
                    share = doc.get("peak", {}).get(f"{backend}/1", {}).get("models", {}).get(name, {}).get("share")
                    got, what = share, f"share of the int8 peak (goal {100 * want:.0f}%)"
                    text = "not measured" if share is None else f"{100 * share:.1f}%"
                else:
                    other = next((v for v in m["variants"].values() if v["form"] == form and v["precision"] == precision
                                  and v["backend"] in (backend, "onnxruntime") and "1" in v.get("rounds_ms", {})), None)
                    got = None if other is None else summary(ratios(other["rounds_ms"]["1"], ref["rounds_ms"]["1"]))["median"]
                    what = f"vs {FORM_LABELS[form]} {precision} (goal {want:.1f}x)"
                    text = "not measured" if got is None else f"{got:.2f}x"
                verdict = "met" if got is not None and got >= want else "**NOT MET**"
                out.append(f"- {name} {backend} int8, 1 thread, {what}: {text}, {verdict}")
    return (["Speed goals (condensenet-74-c8 at 224x224, 1 thread):", *out, ""] if out else [])


def _top1(v: dict, doc: dict) -> str:
    if "top1" not in v:
        return "-"
    n, total = v.get("top1_images"), doc.get("trained", {}).get("heldout_images")
    return f"{v['top1']:.1f}" + (f" ({n} of {total} images)" if n and total and n < total else "")


def table(doc: dict, threads: list[str]) -> list[str]:
    """One row per artifact: latency and how many times faster edgecn's int8 artifact is."""
    head = "| model | backend | variant | prec | top-1 % | MMACs | " + " | ".join(
        f"{t}T ms median (IQR) | edgecn int8 speedup {t}T [min-max]" for t in threads) + " |"
    rows = [head, "|" + "---|" * (6 + 2 * len(threads))]
    for name, m in doc["models"].items():
        if m.get("baseline_for") or name == "conv3x3-256":
            continue
        members = [(name, m)] + [(n, b) for n, b in doc["models"].items() if b.get("baseline_for") == name]
        for backend in ("executorch", "tflite"):
            if not any(v["backend"] == backend for v in m["variants"].values()):
                continue
            ref = _reference(m, backend)
            for n, mm in members:
                for v in mm["variants"].values():
                    if v["backend"] not in (backend, "onnxruntime"):
                        continue
                    label = (f"{FORM_LABELS[v['form']]}" if n == name else
                             "baseline exported as is" if v["form"] == "naive" else f"baseline, {v['form']}")
                    top1 = _top1(v, doc)
                    cells = " | ".join(_cell(v, ref, t) for t in threads)
                    rows.append(f"| {n} | {v['backend']} | {label} | {v['precision']} | {top1} | "
                                f"{v['macs'] / 1e6:.1f} | {cells} |")
    return rows


def markdown(doc: dict, png: str, planned: tuple[str, ...] = ()) -> str:
    """The whole results page; ``planned`` models missing from ``doc`` are listed as not measured."""
    mach = doc["machine"]
    threads = [str(t) for t in doc["settings"]["threads"].split(",")]
    s = doc["settings"]
    lines = [
        f"Measured {doc['started']} on `{mach['host']}`: {mach['cpu']}, {mach['cores']} cores, "
        f"ISA {' '.join(mach.get('isa') or ['not recorded'])}, "
        f"load average {doc['load_avg_start'][0]:.1f} at start and {doc['load_avg_end'][0]:.1f} at the end "
        f"(the machine is shared: absolute times are pessimistic; ratios are paired within rounds).",
        "",
        f"Each latency is the median of {s['rounds']} interleaved rounds (each round's own median over "
        f">= {s['seconds']} s, >= {s['min_runs']} inferences), every artifact and thread setting in its own "
        "process; IQR in brackets. Speedup = other variant's latency / edgecn int8's, per round, "
        "median [min-max]; below 1 means edgecn's artifact is slower (marked **not faster**).",
        "",
        "The cost table's prediction (the sum of the model's segments, each compiled and timed alone in "
        "int8, less what each cut costs twice, priced by timing its two neighbours together) is compared "
        "with edgecn's int8 artifact timed in the same interleaved rounds as those segments (the ms after "
        "\"of\"; median of per-round errors), not with the latency column, which was timed minutes apart.",
        "",
        f"How many times faster edgecn's int8 artifact is than each alternative, at {threads[0]} thread(s) "
        "(median of per-round ratios; the full table with spreads and every thread setting follows):",
        "",
        *summary_table(doc, threads[0]), "",
        "All artifacts:", "",
        *table(doc, threads), "",
    ]
    lines += goal_lines(doc) + _trained_lines(doc) + _peak_lines(doc) + _gather_lines(doc) + _overhead_lines(doc)
    for key, why in doc.get("failed", {}).items():
        lines.append(f"- `{key}` could not be built: {why}")
    if doc.get("failed"):
        lines.append("")
    if doc["skipped"]:
        why = "not in bench/.cache and --cached-only" if doc["settings"].get("cached_only") else "time budget"
        lines.append(f"Not measured in this run ({why}): {', '.join(doc['skipped'])}.")
    missing = [m for m in planned if m not in doc["models"]]
    if missing:
        lines.append(f"Not in this run (left out with --only/--backends or the budget): {', '.join(missing)}; "
                     f"backends timed: {doc['settings'].get('backends', 'executorch,tflite')}.")
    lines += ["", f"![top-1 against latency]({png})", "",
              f"Versions: {', '.join(f'{k} {v}' for k, v in mach['versions'].items())}. Run took {doc['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def _trained_lines(doc: dict) -> list[str]:
    t, acc = doc["trained"], doc.get("accuracy", {})
    return [f"Top-1 is on the {t['heldout_images']} held-out digits images at {t['input_size']}x{t['input_size']} "
            f"after {t['epochs']} epochs of `{t['model']}` (eager PyTorch: training form "
            f"{acc.get('eager/train-fp32', float('nan')):.1f}%, condensed "
            f"{acc.get('eager/condensed-fp32', float('nan')):.1f}%); other models have untrained weights "
            "(speed only).", ""] + _build_lines(t.get("build"))


MAX_DROP, MIN_SQNR = 1.0, 20.0
"""The trained model's int8 goal: within this many top-1 points of float, at least this SQNR (dB)."""


def _build_lines(build: dict | None) -> list[str]:
    """The trained model's ``edgecn build --target rpi5`` as its manifest records it."""
    if not build:
        return []
    ref = build.get("float_top1")
    parts, ok = [], not build.get("failed")
    for a in build["artifacts"]:
        if a["precision"] != "int8" or a.get("top1") is None:
            continue
        good = ref is not None and a["top1"] >= ref - MAX_DROP and (a.get("sqnr_db") or 0) >= MIN_SQNR
        ok &= good
        parts.append(f"int8 `.{'pte' if a['backend'] == 'executorch' else a['backend']}` {a['top1']:.2f}% / "
                     f"{a['sqnr_db']:.1f} dB")
    if not parts:
        return []
    failed = "; ".join(f"{f.get('precision')} {f.get('backend')}: {f.get('reason')}" for f in build.get("failed", []))
    return [f"Its `edgecn build --target rpi5`, float {ref:.2f}%, each int8 artifact scored in its own runtime on "
            f"the held-out images (top-1 / SQNR of its logits against float): {', '.join(parts)}"
            + (f"; failed: {failed}" if failed else "")
            + f" (goal: every int8 artifact within {MAX_DROP:g} point and at least {MIN_SQNR:g} dB: "
            + ("met)." if ok else "**NOT MET**)."), ""]


def _peak_lines(doc: dict) -> list[str]:
    out = []
    for key, p in doc.get("peak", {}).items():
        backend, t = key.split("/")
        models = ", ".join(f"{n} {m['macs_per_s'] / 1e9:.1f} GMAC/s ({100 * m['share']:.0f}%)"
                           for n, m in p["models"].items())
        out.append(f"- {backend}, {t} thread(s): one large int8 conv reaches {p['macs_per_s'] / 1e9:.1f} GMAC/s; "
                   f"edgecn int8 artifacts: {models or 'none timed'}")
    return (["Multiply-add rate against the best this runtime reaches here (same run):", *out, ""] if out else [])


def _gather_lines(doc: dict) -> list[str]:
    g = doc.get("gather_cost")
    if not g or "backends" not in g:
        return [f"Gather cost: not measured ({(g or {}).get('error', 'not run')}).", ""] if g else []
    parts = [f"{b} {v['gather_cost']:.1f} [{v['min']:.1f}-{v['max']:.1f}]" for b, v in g["backends"].items()]
    return [f"A kept channel gather costs, per gathered value, this many int8 conv multiply-adds of the same "
            f"runtime ({g['channels']} channels at {g['size']}x{g['size']}, {g['threads']} thread, `{g['command']}`): "
            f"{', '.join(parts)}. Folding it into a dense 1x1 conv costs O x (C-1)/C per value (96 for a 128-wide "
            "conv with C = 4), which is why edgecn's ARM lowering keeps most CondenseNet gathers.", ""]


def _overhead_lines(doc: dict) -> list[str]:
    o = doc.get("runner_overhead", {})
    if "median_ratio" not in o:
        return [f"Runner overhead: not measured ({o.get('skipped') or o.get('error')}).", ""]
    return [f"Runner overhead on `{o['artifact']}`: runner / bare invoke loop = {o['median_ratio']:.3f} "
            f"(median of rounds; `{o['command']}`).", ""]


def plot(doc: dict, path: Path) -> None:
    """Held-out top-1 against 1-thread latency for every artifact with trained weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=90)
    markers = {"executorch": "o", "tflite": "s", "onnxruntime": "^"}
    for m in doc["models"].values():
        for key, v in m["variants"].items():
            if "top1" not in v or "1" not in v["latency_ms"]:
                continue
            x = v["latency_ms"]["1"]["median"]
            ax.scatter(x, v["top1"], marker=markers[v["backend"]], c="C3" if v["form"] == "edgecn" else "C0")
            ax.annotate(f"{v['form']} {v['precision']} {v['backend'][:4]}", (x, v["top1"]), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("latency, 1 thread (ms, log)")
    ax.set_ylabel("held-out top-1 (%)")
    ax.set_title(f"{doc['trained']['model']} on digits: red = edgecn, blue = alternatives", fontsize=9)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def update_readme(readme: Path, md: str, results: str, png: str, doc: dict | None = None) -> None:
    """Replace (or append) the Benchmarks section, which is the last section of README.md."""
    from edgecn.fileio import atomic_write_text

    doc = doc or {}
    text = readme.read_text()
    head, _, rest = text.partition("\n" + README_HEADING + "\n")
    head = head.rstrip("\n")
    # Paragraphs written by hand between the heading and the generated part stay.
    notes = rest.split(GENERATED)[0].strip("\n") if GENERATED in rest else ""
    body = md.replace(f"]({Path(png).name})", f"]({png})")
    section = (f"\n\n{README_HEADING}\n\n" + (notes + "\n\n" if notes else "") + f"{GENERATED} measures edgecn's artifacts (made by "
               "`edgecn.build`, exactly what `edgecn build --target rpi5` gives a user) against what a "
               "user would export instead. It builds what bench/.cache/ lacks first (the training of CondenseNet-86, "
               "some 80 exports and the cost tables of the models; `python bench/run_all.py --build-only` does only "
               "that, and can run as several processes side by side with `--only`" + _build_clause(doc.get("cache_build"))
               + "), then times, scores and writes the results (" + _run_clause(doc) + "; we aim for under 20 minutes; "
               "`--rounds 3` or `--threads 1` shortens it). "
               f"`python bench/gather_cost.py` alone measures the price of a kept gather. The latest run ({results}):"
               f"\n\n{body}")
    atomic_write_text(readme, head + section)


def _build_clause(build: dict | None) -> str:
    """When and how long the cache the run timed took to build, from ``bench/.cache/builds.jsonl``."""
    if not build:
        return ""
    procs = build.get("processes", 1)
    return (f": {build['seconds'] / 60:.0f} minutes for the run below, {build['started'][:16].replace('T', ' ')} UTC, "
            f"{procs} build process{'es' if procs > 1 else ''} on {build.get('cpu') or 'this machine'}")


def _run_clause(doc: dict) -> str:
    models = [m for m, v in doc.get("models", {}).items() if not v.get("baseline_for") and m != "conv3x3-256"]
    threads = doc.get("settings", {}).get("threads", "1,2").replace(",", " and ")
    took = f"{doc['seconds'] / 60:.0f} minutes in the run below" if doc.get("seconds") else "the run below"
    return f"{took} for {len(models)} model{'s' if len(models) != 1 else ''} at {threads} thread(s)"
