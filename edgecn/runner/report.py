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


def single(r: dict) -> str:
    """Everything about one run, as a two-column table."""
    lat = r["latency_ms"]
    rows = [["artifact", r["name"]], ["runtime", f"{r['runtime']} {' '.join(f'{k} {v}' for k, v in r['versions'].items())}"],
            ["threads", r["threads"] or "default"], ["input", f"{r['input']['source']} {r['input']['dtype']}{r['input']['shape']}"],
            ["sha256", f"{r['integrity']['sha256'][:16]}... " + _integrity(r["integrity"])],
            ["load ms", _f(r["load_ms"])], ["first inference ms", _f(r["first_ms"])],
            ["warm-up runs", len(r["warmup_ms"])], ["runs", r["runs"]]]
    rows += [[f"latency {k} ms", _f(lat.get(k))] for k in ("min", "mean", "median", "p90", "p99", "max", "std")]
    rows += [["throughput /s", _f(r["throughput_ips"], 1)], ["peak RSS MiB", _f(r["peak_rss_mb"], 1)]]
    rows += [[f"{k}", _sensor(v)] for k, v in r["sensors"].items()]
    if r.get("realtime"):
        rt = r["realtime"]
        rows += [["real time", f"{rt['fps']:g} fps target, {rt['achieved_fps']:.1f} achieved"],
                 ["deadline misses", f"{rt['deadline_misses']} of {rt['processed']}"], ["dropped frames", rt["dropped_frames"]],
                 ["jitter ms (mean/p99/max)", "/".join(_f(rt["jitter_ms"].get(k)) for k in ("mean", "p99", "max"))]]
    if r.get("accuracy"):
        a = r["accuracy"]
        rows.append(["top-1", f"{a['top1']:.2f}% of {a['samples']} ({a['data']})"])
    out = table(["", "value"], rows)
    if r.get("op_profile"):
        out += "\n\n" + op_table(r["op_profile"])
    return out


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


def comparison(results: list[dict]) -> str:
    """One row per artifact and thread setting; ratios against the first row."""
    base = results[0]["latency_ms"]["median"]
    base_tp = results[0]["throughput_ips"]
    rows = []
    for r in results:
        lat = r["latency_ms"]
        acc = r.get("accuracy")
        rows.append([r["name"], r["runtime"], r["threads"] or "default", _f(r["load_ms"], 1), _f(lat["median"]),
                     _f(lat["p90"]), _f(lat["p99"]), _f(r["throughput_ips"], 1), f"{lat['median'] / base:.2f}x",
                     f"{r['throughput_ips'] / base_tp:.2f}x", f"{acc['top1']:.2f}%" if acc else None])
    return table(["artifact", "runtime", "threads", "load ms", "median ms", "p90 ms", "p99 ms", "per s",
                  "median vs 1st", "throughput vs 1st", "top-1"], rows)


def render(doc: dict) -> str:
    results = doc["results"]
    env = doc["environment"]
    head = f"{env['device']} | {env['cpu']} | {env['cores']} cores | {env['os']} | python {env['python']}"
    body = single(results[0]) if len(results) == 1 else "\n\n".join([comparison(results)] + [
        op_table(r["op_profile"]) for r in results if r.get("op_profile")])
    return head + "\n\n" + body


def plot(doc: dict, out: str | Path) -> None:
    """Latency histogram and timeline per result; the frame deadline is drawn in real-time mode."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgecnError("--plot needs matplotlib", "pip install matplotlib, or drop --plot (use --json)") from None
    results = [r for r in doc["results"] if r.get("samples_ms")]
    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.2 * len(results)), squeeze=False)
    for (hist, line), r in zip(axes, results):
        label = f"{r['name']} ({r['runtime']}, {r['threads'] or 'default'} threads)"
        hist.hist(r["samples_ms"], bins=50)
        hist.set(xlabel="latency ms", ylabel="runs", title=label)
        x = r["start_offsets_s"] or list(range(len(r["samples_ms"])))
        line.plot(x, r["samples_ms"], lw=0.8)
        line.set(xlabel="s since start" if r["start_offsets_s"] else "run", ylabel="latency ms", title="timeline")
        if r.get("realtime"):
            for ax in (hist, line):
                (ax.axvline if ax is hist else ax.axhline)(r["realtime"]["period_ms"], color="red", ls="--", label="deadline")
            line.legend()
    fig.tight_layout()
    tmp = Path(out).with_name(f".{Path(out).name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100)
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True) if tmp.parent.is_dir() else None
        raise EdgecnError(f"could not write the plot {str(out)!r}: {e.strerror or e}",
                          "pass --plot a path in a folder you can write to") from e
    finally:
        plt.close(fig)  # never leave a half-written plot where a good one was
