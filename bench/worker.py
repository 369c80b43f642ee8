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
import statistics
import sys
import time

from edgecn.runner import open_runner
from edgecn.runner.inputs import input_spec, random_inputs

WARMUP = 5
SLOW_S = 3.0
"""A window stops short of ``min_runs`` once it has run this long (a multi-second artifact,
such as a training form whose convs are not delegated, gets one inference per round)."""


def timed(runner, arrays, seconds: float, min_runs: int) -> dict:
    """Back-to-back inferences for ``seconds`` (at least ``min_runs`` unless they take over
    ``SLOW_S``); median of per-call times."""
    times = []
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if times and elapsed >= seconds and (len(times) >= min_runs or elapsed >= SLOW_S):
            break
        runner.infer(arrays[len(times) % len(arrays)])
        times.append(runner.last_inference_time())
    return {"median_ms": statistics.median(times) * 1e3, "runs": len(times)}


def main(argv: list[str]) -> int:
    path, threads = argv[0], int(argv[1])
    with open_runner(path, threads=threads) as runner:
        arrays = random_inputs(input_spec(runner.inputs[0], None), count=4).arrays
        start = time.perf_counter()
        for i in range(WARMUP):
            runner.infer(arrays[i % len(arrays)])
            if time.perf_counter() - start > SLOW_S:
                break
        print(json.dumps({"ready": True, "load_ms": runner.load_time * 1e3}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            print(json.dumps(timed(runner, arrays, float(words[1]), int(words[2]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
