"""Human-readable output of profile results: one table per artifact, a comparison table, and plots.

Torch-free; matplotlib is imported only for ``--plot``.
"""

from __future__ import annotations

from pathlib import Path

from edgecn.errors import EdgecnError


def table(headers: list[str], rows: list[list]) -> str:
    """Columns aligned; the first left, the rest right."""
    cells = [headers] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i and _numeric(c) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _numeric(c: str) -> bool:
    try:
        float(c.rstrip("x%"))
        return True
    except ValueError:
        return c == "-"


def _f(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _integrity(i: dict) -> str:
    if i["verified"]:
        return "matches manifest"
    if i["manifest"]:
        return f"UNVERIFIED ({i.get('reason', 'sha256 mismatch')}), profiled with --force"
    return "unverified: no manifest" + (" (spec carried by the artifact)" if i.get("spec") else ", no spec")


def _sensor(v) -> str:
    return v if isinstance(v, str) else f"{v['min']:.0f}..{v['max']:.0f} (mean {v['mean']:.1f})"


def op_table(p: dict) -> str:
    if not p.get("available"):
        extra = ("\nops: " + ", ".join(f"{k} x{v}" for k, v in p["ops"].items())) if p.get("ops") else ""
        return f"per-op profile: not available ({p['reason']}){extra}"
    rows = [[o["op"], o["count"], _f(o["total_ms_per_run"], 4), f"{o['share'] * 100:.1f}%"] for o in p["ops"]]
    note = f"\n{p['note']}" if p.get("note") else ""
    return f"per-op profile ({p['source']}, {p['runs']} runs)\n" + table(["op", "count", "ms/run", "share"], rows) + note


COLUMNS = ["artifact", "runtime", "threads", "runs", "load ms", "first ms", "median ms", "p10-p90 ms", "p99 ms",
           "per s", "vs 1st", "top-1"]


def labels(results: list[dict]) -> list[str]:
    """Each result's artifact name, with as many parent folders as it takes to tell equal names apart.

    ``model.tflite`` alone while it is the only one; ``a/int8/model.tflite`` and
    ``b/int8/model.tflite`` when two builds are compared.
    """
    parts = [Path(r.get("artifact") or r["name"]).parts or (r["name"],) for r in results]
    out = []
    for mine in parts:
        depth = 1
        others = [p for p in parts if p != mine]
        while depth < len(mine) and any(p[-depth:] == mine[-depth:] for p in others):
            depth += 1
        out.append("/".join(mine[-depth:]))
    return out


def _name(r: dict) -> str:
    return r.get("label") or r["name"]


def comparison(results: list[dict]) -> str:
    """One row per artifact and thread setting, the same columns for one result or many.

    ``per s`` is throughput from the timed samples themselves (runs / their total time), so it
    and the percentiles describe the same inferences; ``vs 1st`` compares it with the first row.
    """
    base_tp = results[0]["throughput_ips"]
    rows = []
    for r in results:
        lat = r["latency_ms"]
        acc = r.get("accuracy")
        spread = f"{lat['p10']:.3f}-{lat['p90']:.3f}" if "p10" in lat else None
        rows.append([_name(r), r["runtime"], r["threads"], r["runs"], _f(r["load_ms"], 1), _f(r["first_ms"]),
                     _f(lat["median"]), spread, _f(lat["p99"]), _f(r["throughput_ips"], 1),
                     f"{r['throughput_ips'] / base_tp:.2f}x" if base_tp else None,
                     f"{acc['top1']:.2f}%" if acc else None])
    return table(COLUMNS, rows)


def _rss_scope(r: dict) -> str:
    """What the peak RSS includes besides the runtime: it is one process's (plus its runner child's)."""
    return " (this runner and its native .pte runner process)" if r.get("runtime") == "executorch" else ""


def details(r: dict) -> list[str]:
    """What does not fit a column: integrity, real-time figures, memory, sensors."""
    lines = [f"{_name(r)} ({r['threads']} threads): sha256 {r['integrity']['sha256'][:16]}... "
             f"{_integrity(r['integrity'])}; input {r['input']['source']} {r['input']['dtype']}{r['input']['shape']}; "
             f"peak RSS {_f(r.get('peak_rss_mb'), 1)} MiB{_rss_scope(r)}; latency std {_f(r['latency_ms'].get('std'))} ms"]
    if r.get("realtime"):
        rt = r["realtime"]
        jitter = "/".join(_f(rt["jitter_ms"].get(k)) for k in ("mean", "p99", "max"))
        lines.append(f"  real time: {rt['fps']:g} fps target, {rt['achieved_fps']:.1f} achieved; "
                     f"{rt['deadline_misses']} of {rt['processed']} frames missed their deadline, "
                     f"{rt['dropped_frames']} dropped; start jitter mean/p99/max {jitter} ms")
    sensors = "; ".join(f"{k} {_sensor(v)}" for k, v in (r.get("sensors") or {}).items())
    if sensors:
        lines.append(f"  sensors: {sensors}")
    return lines


def render(doc: dict) -> str:
    """The profile as a reader sees it: where it ran, one table, then per-artifact details."""
    for r, label in zip(doc["results"], labels(doc["results"])):
        r["label"] = label
    failed = [r for r in doc["results"] if r.get("error")]
    results = [r for r in doc["results"] if not r.get("error")]
    env = doc["environment"]
    isa = " ".join(env.get("isa") or []) or "-"
    host = next((r["remote"]["host"] for r in doc["results"] if r.get("remote")), None)
    head = [f"device: {env['device']}" + (f" (over ssh: {host})" if host else ""),
            f"CPU: {env['cpu']}, {env['cores']} cores, ISA: {isa}",
            f"OS: {env['os']}, python {env['python']}"]
    if doc.get("plan"):
        head.append(f"measured: {doc['plan']}")
    body = [comparison(results), ""] if results else []
    for r in results:
        body += details(r)
    body += [f"FAILED {_name(r)} ({r['threads']} threads): {r['error']}" for r in failed]
    ops = [op_table(r["op_profile"]) for r in results if r.get("op_profile")]
    return "\n".join(head) + "\n\n" + "\n".join(body) + ("\n\n" + "\n\n".join(ops) if ops else "")


def plot(doc: dict, out: str | Path) -> None:
    """Latency histogram and timeline per result; the frame deadline is drawn in real-time mode."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgecnError("--plot needs matplotlib", "pip install matplotlib, or drop --plot (use --json)") from None
    import numpy as np

    for r, label in zip(doc["results"], labels(doc["results"])):
        r["label"] = label
    results = [r for r in doc["results"] if r.get("samples_ms") and not r.get("error")]
    if not results:
        raise EdgecnError("nothing to plot: no latency samples were kept", "drop --plot")
    # One x-scale for every histogram, cut at the 0.5th and 99.5th percentiles of all samples, so
    # one stall does not squeeze every run into one bar; what lies beyond is counted in the title.
    every = np.concatenate([np.asarray(r["samples_ms"]) for r in results])
    lo, hi = np.percentile(every, [0.5, 99.5])
    hi = hi if hi > lo else lo + 1e-3
    bins = np.linspace(lo, hi, 60)
    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.2 * len(results)), squeeze=False,
                             sharex="col", sharey="col")
    for (hist, line), r in zip(axes, results):
        samples = np.asarray(r["samples_ms"])
        outside = int(((samples < lo) | (samples > hi)).sum())
        label = f"{_name(r)} ({r['runtime']}, {r['threads']} threads)"
        hist.hist(np.clip(samples, lo, hi), bins=bins)
        for key, color in (("median", "black"), ("p99", "orange")):
            value = r["latency_ms"][key]
            hist.axvline(value, color=color, lw=1, label=f"{key} {value:.3f} ms")
        hist.set(xlabel="latency ms", ylabel="runs",
                 title=label + (f"; {outside} runs outside the axis" if outside else ""))
        x = r["start_offsets_s"] or list(range(len(samples)))
        line.plot(x, samples, lw=0.8)
        line.set(xlabel="s since start" if r["start_offsets_s"] else "run", ylabel="latency ms", title="timeline",
                 ylim=(lo * 0.95, hi * 1.05))
        if r.get("realtime"):
            for ax in (hist, line):
                (ax.axvline if ax is hist else ax.axhline)(r["realtime"]["period_ms"], color="red", ls="--", label="deadline")
            line.legend(loc="upper right", fontsize=8)
        hist.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    from edgecn.fileio import atomic_path

    try:  # the one write path: an exclusive temporary name, replaced whole (or streamed to a device)
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)  # never leave a half-written plot where a good one was
