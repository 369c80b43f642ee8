"""The two .pte engines side by side: ExecuTorch's Python binding vs edgecn's native C++ runner.

Usage: python bench/pte_engines.py ARTIFACT.pte [...] [--threads 1] [--rounds 7] [--seconds 1.0]

Each (artifact, engine) is held open in its own worker process (bench/worker.py) and timed in
interleaved rounds; the ratio is taken within each round. Both engines report the time of the
runtime call (the native runner times Method::execute inside the C++ program; the binding's
time includes its torch tensor conversion), so the ratio shows what the torch-free path costs
or saves. The native runner is built first if it is not (python -m edgecn.runner.native).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from timing import interleaved, ratios, summary  # noqa: E402

from edgecn.runner import native, sysinfo  # noqa: E402
from edgecn.runner.pte import ENV_ENGINE  # noqa: E402

ENGINES = ("python", "native")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifacts", nargs="+", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=1.0, help="timing window per worker and round")
    p.add_argument("--min-runs", type=int, default=20)
    a = p.parse_args(argv)
    binary = native.find_binary() or native.build()
    print(f"CPU: {sysinfo.cpu_model()}, {os.cpu_count()} cores, ISA: {' '.join(sysinfo.isa_flags())}")
    print(f"native runner: {binary}; {a.threads} thread(s), {a.rounds} interleaved rounds of >= {a.seconds:g} s\n")
    print(f"{'artifact':40s} {'python ms':>10s} {'native ms':>10s} {'python/native':>14s} {'round range':>14s}")
    for path in a.artifacts:
        keys = {f"{path}:{e}": path for e in ENGINES}
        envs = {f"{path}:{e}": dict(os.environ, **{ENV_ENGINE: e}) for e in ENGINES}
        medians = interleaved(keys, a.threads, a.rounds, a.seconds, a.min_runs, say=lambda *_: None, envs=envs)
        py, nat = medians[f"{path}:python"], medians[f"{path}:native"]
        r = summary(ratios(py, nat))
        print(f"{path.name[-40:]:40s} {summary(py)['median']:10.3f} {summary(nat)['median']:10.3f} "
              f"{r['median']:13.3f}x {r['min']:6.3f}-{r['max']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
