"""Timing loops: runs and time as benchmark_model counts them, real-time pacing, and top-1 on labelled inputs.

Torch-free. All times are taken with ``time.perf_counter`` around the runtime call
(``Runner.last_inference_time``), so the loop's own bookkeeping is not counted.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from edgecn.runner.base import Runner
from edgecn.runner.inputs import Inputs

SPIN_S = 0.0005  # sleep until this close to a frame's start, then spin: sleep alone overshoots by ~0.1 ms


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long to measure, as LiteRT's ``benchmark_model`` does.

    At least ``runs`` inferences and at least ``min_seconds`` (a fixed count alone makes a small
    model's throughput noise: 100 runs of 20 us is 2 ms of measurement), stopping at
    ``max_seconds`` once one run is in; before that, a warm-up of at least ``warmup`` runs and
    at least ``warmup_seconds``. ``fps`` paces frames in real-time mode.
    """

    runs: int = 50
    min_seconds: float = 1.0
    max_seconds: float = 150.0
    warmup: int = 10
    warmup_seconds: float = 0.5
    fps: float | None = None

    def __post_init__(self):
        from edgecn.errors import EdgecnError

        if self.runs < 1:
            raise EdgecnError(f"--runs must be at least 1, got {self.runs}", "pass --runs 100")
        if self.min_seconds < 0 or self.warmup_seconds < 0:
            raise EdgecnError("measurement times must not be negative", "pass --duration 10")
        if self.warmup < 0:
            raise EdgecnError(f"--warmup must be >= 0, got {self.warmup}", "pass --warmup 10")
        if self.fps is not None and self.fps <= 0:
            raise EdgecnError(f"--fps must be positive, got {self.fps}", "pass --fps 30")
        object.__setattr__(self, "max_seconds", max(self.max_seconds, self.min_seconds))

    def done(self, count: int, elapsed: float) -> bool:
        if count >= 1 and elapsed >= self.max_seconds:
            return True
        return count >= self.runs and elapsed >= self.min_seconds

    def describe(self) -> str:
        limit = "" if self.max_seconds == float("inf") else f", at most {self.max_seconds:g} s"
        return (f"at least {self.runs} runs and {self.min_seconds:g} s{limit}, "
                f"after at least {self.warmup} warm-up runs and {self.warmup_seconds:g} s")


def stats_ms(seconds: list[float]) -> dict:
    """min, mean, median, p10, p90, p99, max, std and cv (std / mean) of latencies, in milliseconds."""
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    if a.size == 0:
        return {}
    mean = float(a.mean())
    return {"min": float(a.min()), "mean": mean, "median": float(np.median(a)), "p10": float(np.percentile(a, 10)),
            "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)), "max": float(a.max()),
            "std": float(a.std()), "cv": float(a.std()) / mean if mean > 0 else 0.0}


MAX_PLAN_HOURS = 8
"""Longest measurement edgecn starts in one run; a longer one is a typo (--runs 100000000)."""


def check_estimate(plan: Plan, first: float, warm: list[float], where: str, say=None) -> None:
    """With ``--runs`` (no time cap) the length follows the latency: estimated once it is known.

    ``runs`` times the warmed-up latency (or the frame period at ``fps``): more than
    ``MAX_PLAN_HOURS`` is refused before the timed loop starts, more than a minute is said.
    """
    from edgecn.errors import EdgecnError

    if plan.max_seconds != float("inf"):
        return
    each = float(np.median(warm)) if warm else first
    each = max(each, 1.0 / plan.fps) if plan.fps else each
    total = max(each * plan.runs, plan.min_seconds)
    length = f"{total / 3600:.1f} h" if total >= 3600 else f"{total / 60:.1f} min"
    if total > MAX_PLAN_HOURS * 3600:
        raise EdgecnError(f"--runs {plan.runs} at about {each * 1e3:.3g} ms each would measure {where} for about {length}",
                          f"lower --runs, or use --duration SECONDS (at most {MAX_PLAN_HOURS} h in one run)")
    if total > 60 and say is not None:
        say(f"edgecn profile: {where}: {plan.runs} runs at about {each * 1e3:.3g} ms each, about {length}")


def first_and_warmup(runner: Runner, inputs: Inputs, plan: Plan) -> tuple[float, list[float]]:
    """Time the first inference (caches cold, delegate set-up), then warm up by count and by time."""
    runner.infer(inputs.arrays[0])
    first = runner.last_inference_time()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < plan.warmup or time.perf_counter() - start < plan.warmup_seconds:
        if time.perf_counter() - start >= plan.max_seconds:
            break
        runner.infer(inputs.arrays[len(times) % len(inputs.arrays)])
        times.append(runner.last_inference_time())
    return first, times


def timed(runner: Runner, inputs: Inputs, plan: Plan) -> dict:
    """Back-to-back inferences; latency stats, and throughput from the same samples (runs / their sum)."""
    arrays, n_arrays = inputs.arrays, len(inputs.arrays)
    lat: list[float] = []
    start = time.perf_counter()
    while not plan.done(len(lat), time.perf_counter() - start):
        runner.infer(arrays[len(lat) % n_arrays])
        lat.append(runner.last_inference_time())
    wall = time.perf_counter() - start
    return {"runs": len(lat), "wall_s": wall, "latency_ms": stats_ms(lat), "throughput_ips": len(lat) / sum(lat),
            "samples_ms": [t * 1e3 for t in lat], "start_offsets_s": None}


def realtime(runner: Runner, inputs: Inputs, plan: Plan) -> dict:
    """Frames arrive every 1/fps s on an absolute schedule (no drift), as from a camera.

    A frame whose successor has already arrived when the runner is free is dropped (a
    camera overwrites its buffer); a frame that finishes after the next frame's arrival
    misses its deadline. Jitter is how late each processed frame started.
    """
    period = 1.0 / plan.fps
    arrays, n_arrays = inputs.arrays, len(inputs.arrays)
    lat, jitter, offsets = [], [], []
    misses = dropped = frame = 0
    t0 = time.perf_counter()
    while not plan.done(len(lat), time.perf_counter() - t0):
        now = time.perf_counter()
        latest = int((now - t0) / period)
        if latest > frame:  # frames frame..latest-1 were overwritten before we could take them
            dropped += latest - frame
            frame = latest
        due = t0 + frame * period
        if lat and due - t0 >= plan.max_seconds:  # the next frame comes after the plan's end: no wait for it
            break
        _wait_until(due)
        begin = time.perf_counter()
        runner.infer(arrays[frame % n_arrays])
        end = time.perf_counter()
        lat.append(runner.last_inference_time())
        jitter.append(begin - due)
        offsets.append(begin - t0)
        misses += end > due + period
        frame += 1
    wall = time.perf_counter() - t0
    # Frames processed per frame slot that passed (the last one included), so a loop that keeps
    # up reports exactly the target rate: dividing by the wall time, which ends right after the
    # last inference rather than at the end of its slot, overstated it (30.3 for --fps 30).
    achieved = len(lat) / (frame * period) if frame else 0.0
    return {"runs": len(lat), "wall_s": wall, "latency_ms": stats_ms(lat), "throughput_ips": achieved,
            "samples_ms": [t * 1e3 for t in lat], "start_offsets_s": offsets,
            "realtime": {"fps": plan.fps, "period_ms": period * 1e3, "frames": frame, "processed": len(lat),
                         "deadline_misses": misses, "dropped_frames": dropped, "achieved_fps": achieved,
                         "jitter_ms": stats_ms(jitter)}}


def _wait_until(t: float) -> None:
    remaining = t - time.perf_counter()
    if remaining > SPIN_S:
        time.sleep(remaining - SPIN_S)
    while time.perf_counter() < t:
        pass


def top1(runner: Runner, inputs: Inputs, output_quant: dict | None = None) -> dict | None:
    """Top-1 accuracy (percent) over every labelled input, on this device, scored as the build scores."""
    from edgecn.metrics import top1 as top1_of
    from edgecn.runner.evaluate import to_logits

    if not inputs.labels:
        return None
    logits = np.concatenate([to_logits(runner.infer(x), output_quant).reshape(1, -1) for x in inputs.arrays])
    return {"top1": round(top1_of(logits, inputs.labels), 3), "samples": len(inputs.labels), "data": inputs.source}
