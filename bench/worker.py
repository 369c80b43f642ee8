"""One artifact at one thread setting, held open in its own process and timed on request.

Usage (driven by bench/timing.py, one line per request on stdin):
    python bench/worker.py ARTIFACT THREADS
    > time SECONDS MIN_RUNS     ->  {"median_ms": ..., "runs": ...}
    > quit

Each runtime sizes its thread pool once per process, and two runtimes in one process fight
over cores (eager torch timed beside ExecuTorch once ran 100x slower), so every (artifact, threads) pair gets a process of its own. The
process stays up between requests so that rounds can be interleaved across artifacts
without paying the runtime's import and load time again. Torch-free: it runs artifacts
through edgecn's runner (.pte in the native runner).
"""

from __future__ import annotations

import json
import sys

from edgecn.runner import measure, open_runner
from edgecn.runner.inputs import input_spec, random_inputs
from edgecn.runner.measure import Plan

WARMUP = 5
SLOW_S = 3.0
"""A window stops short of ``min_runs`` once it has run this long (a multi-second artifact,
such as a training form whose convs are not delegated, gets one inference per round)."""


def timed(runner, inputs, seconds: float, min_runs: int) -> dict:
    """Back-to-back inferences for ``seconds`` (at least ``min_runs`` unless they take over
    ``SLOW_S``); median of per-call times. The runner's own loop (``edgecn profile``'s), with
    the stopping rule as a ``Plan``: at least ``min_runs`` and ``seconds``, cut at ``SLOW_S``
    (or ``seconds`` when longer) once one run is in."""
    result = measure.timed(runner, inputs, Plan(runs=min_runs, min_seconds=seconds, max_seconds=SLOW_S))
    return {"median_ms": result["latency_ms"]["median"], "runs": result["runs"]}


def main(argv: list[str]) -> int:
    path, threads = argv[0], int(argv[1])
    with open_runner(path, threads=threads) as runner:
        inputs = random_inputs(input_spec(runner.inputs[0], None), count=4)
        measure.first_and_warmup(runner, inputs, Plan(warmup=WARMUP - 1, warmup_seconds=0.0, max_seconds=SLOW_S))
        print(json.dumps({"ready": True, "load_ms": runner.load_time * 1e3}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            print(json.dumps(timed(runner, inputs, float(words[1]), int(words[2]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
