"""Whole-model int8 latency of the tuned lowering against the alternatives, side by side.

    python bench/lowering_speed.py [--model condensenet-74-c8] [--input-size 224] [--backend tflite]
                                   [--threads 1] [--runs 50] [--rounds 1] [--no-tune] [--json out.json]

For one model and backend it calls the library as a user would (``edgecn.cost.api`` to tune
with the target's cost table, cached per runtime and CPU; ``edgecn.passes.rewrite``; the
backend's ``compile``; ``edgecn.runner`` to time), then times in one runner call, each
artifact in its own process:

- tuned: each layer in the form the cost table measured fastest;
- target: the rpi5 target's rules (groups merged to >= 16 outputs, gather_cost);
- previous: native groups and the gather prices the targets carried before (12 / 24);
- condensed as is: no rewrites;
- onnxruntime fp32 of the condensed model (ONNX as is), what a user would export instead;
- peak: one 256->256 3x3 int8 conv at 56x56 in the same runtime, the runtime's int8 rate here.

Prints ratios, % of the peak rate on the model's real multiply-adds, and the cost table's
predicted latency next to the measured one. ``--rounds N`` times every artifact in its own worker
in N interleaved rounds (``timing.interleaved``) and takes each ratio as the median of per-round
ratios, which a drifting shared machine needs for differences of a few percent; ``--no-tune``
leaves out the tuned row (no cost table is measured). Times do not carry over between machines: the
CPU's model and ISA flags are printed and written with every result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from variants import previous_config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="condensenet-74-c8")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--target", default="rpi5")
    p.add_argument("--backend", default="tflite", choices=["tflite", "executorch"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds, one worker per artifact (default 1: one pass)")
    p.add_argument("--seconds", type=float, default=2.0, help="timing window per artifact and round, with --rounds")
    p.add_argument("--no-tune", action="store_true", help="no tuned row: measure no cost table")
    p.add_argument("--table", default=None, help="cost table (default: edgecn tune's cache for the target)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    import torch
    from torch import nn

    from edgecn.backends import BACKENDS, CompileContext
    from edgecn.cost.api import default_table_path, load_model
    from edgecn.cost.measure import Timer, compile_all, time_files
    from edgecn.cost.table import CostTable, load_table
    from edgecn.cost.tune import predict, tune
    from edgecn.lowering import LoweringConfig
    from edgecn.models.stats import count
    from edgecn.passes import rewrite
    from edgecn.targets import get_target

    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    target = get_target(args.target)
    net, example = load_model(args.checkpoint, None if args.checkpoint else args.model, args.input_size, args.num_classes)
    base = LoweringConfig.from_dict(target.lowering, args.backend)
    timer = Timer(args.backend, target.options(args.backend), args.threads, args.runs)
    path = Path(args.table) if args.table else default_table_path(target, args.backend, args.threads, None)
    table = load_table(path) if path.exists() else CostTable(args.backend, args.threads)
    started = time.monotonic()
    result = None if args.no_tune else tune(net, base, example, table, timer, say, check_whole=False)
    if result is not None:
        table.save(path)
    tune_s = time.monotonic() - started

    previous = previous_config(base, args.backend)
    models = {"tuned": rewrite(net, base, example, choices=result.choices)[0]} if result else {}
    models.update({"target": rewrite(net, base, example)[0],
              "previous": rewrite(net, previous, example)[0],
              "as-is": net})
    shape = tuple(example.shape)
    items = {name: (m, shape) for name, m in models.items()}
    items["peak-conv"] = (nn.Sequential(nn.Conv2d(256, 256, 3, padding=1)).eval(), (1, 256, 56, 56))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgecn-bench-") as tmp:
        files, failed, _ = compile_all(items, timer, Path(tmp), say)
        from edgecn.logs import native_output_to

        with native_output_to(Path(tmp) / "onnx.log"):
            onnx = BACKENDS.get("tensorrt").compile(net, example, "fp32", CompileContext(Path(tmp), "ort"))
        files["onnxruntime-fp32"] = onnx.path
        rounds = None
        if args.rounds > 1:
            from timing import interleaved

            from edgecn.backends import package_versions
            from edgecn.runner.sysinfo import environment

            rounds = interleaved(files, args.threads, args.rounds, args.seconds, 10, say)
            times = {k: statistics.median(v) for k, v in rounds.items()}
            where = {"environment": environment(), "versions": {**BACKENDS.get(args.backend).tools(),
                                                                **package_versions("onnxruntime")}}
        else:
            times, where = time_files(files, timer)
    timed_s = time.monotonic() - started

    macs = count(net, example.shape[-1], example.shape[1])["macs"]
    peak_macs = 256 * 256 * 9 * 56 * 56
    peak_rate = peak_macs / (times["peak-conv"] * 1e-3) if "peak-conv" in times else None
    predicted = {name: predict(models[name], example, table, result.ends).total_ms
                 for name in ("tuned", "target")} if result else {}

    def ratio(base: str, name: str) -> float | None:
        if name not in times or base not in times:
            return None
        if rounds is None:
            return times[base] / times[name]
        return statistics.median(b / e for b, e in zip(rounds[base], rounds[name]))

    def share(name: str) -> float | None:
        if name not in times or not peak_rate or name == "onnxruntime-fp32":
            return None
        if rounds is None:
            return 100 * macs / (times[name] * 1e-3) / peak_rate
        return statistics.median(100 * (macs / m) / (peak_macs / p) for m, p in zip(rounds[name], rounds["peak-conv"]))

    rows = []
    for name in [n for n in ("tuned", "target", "previous", "as-is") if n in models] + ["onnxruntime-fp32"]:
        rows.append({"lowering": name, "ms": times.get(name), "vs_previous": ratio("previous", name),
                     "vs_onnxruntime_fp32": ratio("onnxruntime-fp32", name), "pct_of_peak": share(name),
                     "predicted_ms": predicted.get(name), "failed": failed.get(name)})
    doc = {"model": args.model if not args.checkpoint else args.checkpoint, "input": list(shape),
           "backend": args.backend, "threads": args.threads, "real_macs": macs, "peak_gmacs": peak_rate and peak_rate / 1e9,
           "rows": rows, "environment": where["environment"], "versions": where["versions"],
           "tune_s": round(tune_s, 1), "timed_s": round(timed_s, 1), "cost_table": str(path) if result else None,
           "rounds": args.rounds, "rounds_ms": rounds}
    _print(doc)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def _print(doc: dict) -> None:
    env = doc["environment"]
    print(f"{doc['model']} {doc['input']} {doc['backend']} int8, {doc['threads']} thread(s); "
          f"{doc['real_macs'] / 1e6:.1f} M real multiply-adds; int8 peak here {doc['peak_gmacs'] or 0:.0f} GMAC/s")
    print(f"host: {env['cpu']}, {env['cores']} cores, {' '.join(env['isa'])}")
    print(f"{'lowering':18} {'ms':>8} {'vs previous':>12} {'vs ORT fp32':>12} {'% of peak':>10} {'predicted':>10} {'error':>7}")
    for r in doc["rows"]:
        if r["ms"] is None:
            print(f"{r['lowering']:18} failed: {r['failed']}")
            continue
        err = f"{100 * (r['predicted_ms'] - r['ms']) / r['ms']:+.1f}%" if r["predicted_ms"] else "-"
        peak = f"{r['pct_of_peak']:9.1f}%" if r["pct_of_peak"] else f"{'-':>10}"
        pred = f"{r['predicted_ms']:10.3f}" if r["predicted_ms"] else f"{'-':>10}"
        print(f"{r['lowering']:18} {r['ms']:8.3f} {r['vs_previous'] or 0:11.2f}x {r['vs_onnxruntime_fp32'] or 0:11.2f}x "
              f"{peak} {pred} {err:>7}")
    how = (f"{doc['rounds']} interleaved rounds, ratios are medians of per-round ratios" if doc["rounds"] > 1
           else "one pass per artifact")
    tuned = f"tuning {doc['tune_s']:.0f} s (cost table {doc['cost_table']})" if doc["cost_table"] else "not tuned"
    print(f"{tuned}, timed run {doc['timed_s']:.0f} s ({how})")


if __name__ == "__main__":
    sys.exit(main())
