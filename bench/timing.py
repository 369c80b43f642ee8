"""Interleaved timing: every artifact of a group in its own worker process, rounds taken in turn.

A loaded, shared machine drifts: a neighbour's job starting halfway through would make
whichever artifact was timed last look slow. Interleaving (round 1: A B C, round 2: C B A,
...) spreads that drift over all of them, and ratios are taken within one round, where
both sides saw the same load.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("worker.py")


@dataclasses.dataclass
class Worker:
    """A running ``bench/worker.py`` holding one artifact open at one thread setting."""

    key: str
    proc: subprocess.Popen

    @classmethod
    def start(cls, key: str, artifact: Path, threads: int) -> "Worker":
        proc = subprocess.Popen([sys.executable, str(WORKER), str(artifact), str(threads)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        return cls(key, proc)

    def wait_ready(self) -> dict:
        return self._reply()

    def time(self, seconds: float, min_runs: int) -> dict:
        self.proc.stdin.write(f"time {seconds} {min_runs}\n")
        self.proc.stdin.flush()
        return self._reply()

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines()
            raise RuntimeError(f"worker for {self.key} died: {err[-1] if err else 'no message'}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()


def interleaved(artifacts: dict[str, Path], threads: int, rounds: int, seconds: float, min_runs: int,
                say=print) -> dict[str, list[float]]:
    """Per-round median latencies (ms) of every artifact, rounds interleaved, one process each.

    Args:
        artifacts: ``{key: path}``; all are timed in the same rounds.
        threads: thread setting of every worker.
        rounds: repetitions; each gives one median per artifact.
        seconds: timing window per artifact and round.
        min_runs: fewest inferences per window (slow artifacts run longer than ``seconds``).

    Returns:
        ``{key: [median_ms of round 0, round 1, ...]}``.
    """
    workers = [Worker.start(k, p, threads) for k, p in artifacts.items()]
    try:
        for w in workers:  # loading in parallel would time nothing, but it competes: wait for all first
            w.wait_ready()
        out: dict[str, list[float]] = {w.key: [] for w in workers}
        for r in range(rounds):
            order = workers if r % 2 == 0 else workers[::-1]
            for w in order:
                out[w.key].append(w.time(seconds, min_runs)["median_ms"])
            say(f"[bench]   round {r + 1}/{rounds} at {threads} thread(s) done")
        return out
    finally:
        for w in workers:
            w.stop()


def summary(values: list[float]) -> dict:
    """Median, quartiles and range of repetition medians (or of per-round ratios)."""
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2], "min": min(values), "max": max(values),
            "n": len(values)}


def ratios(base: list[float], edge: list[float]) -> list[float]:
    """Per-round ``base / edge`` (how many times faster ``edge`` is), pairing the same rounds."""
    return [b / e for b, e in zip(base, edge)]
