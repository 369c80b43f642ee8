"""Two or more artifacts timed side by side: interleaved rounds, one runner process each, and each
one's per-round ratio to the first. The machine (CPU model, ISA flags) is printed with the figures.

Usage: python bench/side_by_side.py BASE.tflite OTHER.tflite [...] [--threads 1] [--rounds 8] [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifacts", nargs="+", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--min-runs", type=int, default=20)
    a = p.parse_args(argv)
    if len(a.artifacts) < 2:
        p.error("give at least two artifacts")

    from edgecn.runner.sysinfo import cpu_model, isa_flags
    from timing import interleaved, ratios, summary

    keys = {f"{i}:{path.name}": path for i, path in enumerate(a.artifacts)}
    got = interleaved(keys, a.threads, a.rounds, a.seconds, a.min_runs)
    print(f"machine: {cpu_model()}, ISA {' '.join(isa_flags())}; {a.threads} thread(s), {a.rounds} interleaved rounds")
    base = next(iter(keys))
    for key in keys:
        s = summary(got[key])
        r = summary(ratios(got[base], got[key]))
        print(f"{key}: median {s['median']:.3f} ms [{s['min']:.3f}-{s['max']:.3f}]; first / this "
              f"{r['median']:.3f}x [{r['min']:.3f}-{r['max']:.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
