"""How much the runner adds on top of the runtime's own invoke loop, on the same artifact in the same process.

Usage: python bench/runner_overhead.py ARTIFACT.tflite [--runs 2000] [--rounds 7] [--threads 1]

Rounds interleave a bare ``set_tensor/invoke/get_tensor`` loop with ``Runner.infer`` and
compare the medians of per-inference times (each side timed the same way, around the call).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from edgecn.runner import open_runner


def bare(it, in_index: int, out_index: int, x: np.ndarray, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        it.set_tensor(in_index, x)
        it.invoke()
        it.get_tensor(out_index)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def runner_loop(r, x: np.ndarray, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r.infer(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(artifact, runs: int = 2000, rounds: int = 7, threads: int = 1, say=print) -> dict:
    """Median ratio of the runner's per-inference time to the bare loop's, over interleaved rounds."""
    with open_runner(artifact, threads=threads) as r:
        x = np.random.default_rng(0).random(r.inputs[0].shape, dtype=np.float32).astype(r.inputs[0].dtype)
        it = r._it  # the same interpreter the runner drives
        ii, oi = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        bare(it, ii, oi, x, runs)  # warm both paths
        ratios, lines = [], []
        for k in range(rounds):
            b, w = (bare(it, ii, oi, x, runs), runner_loop(r, x, runs)) if k % 2 == 0 else \
                   tuple(reversed((runner_loop(r, x, runs), bare(it, ii, oi, x, runs))))
            ratios.append(w / b)
            lines.append(f"round {k}: bare {b * 1e6:.2f} us  runner {w * 1e6:.2f} us  ratio {w / b:.3f}")
            say(lines[-1])
    return {"artifact": str(artifact), "median_ratio": statistics.median(ratios), "rounds": lines,
            "command": f"python bench/runner_overhead.py {artifact} --runs {runs} --rounds {rounds}"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("artifact")
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    result = measure(a.artifact, a.runs, a.rounds, a.threads)
    ratio = result["median_ratio"]
    print(f"median ratio runner/bare over {a.rounds} rounds: {ratio:.3f} (overhead {100 * (ratio - 1):+.1f}%)")


if __name__ == "__main__":
    main()
