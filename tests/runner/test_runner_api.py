"""The Polygraphy-style interface on real artifacts in their real runtimes, compared with each other."""

from __future__ import annotations

import numpy as np
import pytest

from edgecn.errors import EdgecnError
from edgecn.runner import open_runner, runners
from edgecn.runner.inputs import digits_inputs, random_inputs
from edgecn.runner.manifest import Manifest
from edgecn.runner.measure import Plan, realtime, stats_ms, timed


def test_registry_covers_every_suffix():
    assert {".tflite", ".pte", ".onnx", ".engine", ".plan"} <= set(runners())
    with pytest.raises(EdgecnError, match="suffix"):
        open_runner("model.h5")


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_runtimes_agree(artifacts, suffix):
    """Same weights, different runtimes: outputs agree to float rounding."""
    x = np.random.default_rng(1).standard_normal((1, 1, 8, 8)).astype(np.float32)
    with open_runner(artifacts / "model.tflite", threads=1) as ref:
        want = ref.infer(x)
        assert ref.last_inference_time() > 0 and ref.load_time > 0
    with open_runner(artifacts / f"model{suffix}", threads=1) as r:
        got = r.infer({r.inputs[0].name: x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_feed_checked_before_runtime(artifacts):
    with open_runner(artifacts / "model.tflite") as r:
        with pytest.raises(EdgecnError, match="wants float32"):
            r.infer(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(EdgecnError, match="activate"):
        open_runner(artifacts / "model.tflite").infer(np.zeros((1, 1, 8, 8), np.float32))


def test_digits_top1_on_device(artifacts):
    """The fixture model was trained on digits; the manifest's normalisation must reproduce its inputs."""
    entry = Manifest.load(artifacts).find(artifacts / "model.tflite")
    feed = digits_inputs(entry.input)
    with open_runner(artifacts / "model.tflite", threads=1) as r:
        hits = sum(int(np.argmax(r.infer(x))) == y for x, y in zip(feed.arrays, feed.labels))
    assert hits / len(feed.labels) > 0.8


def test_stats_and_timed_loop(artifacts):
    s = stats_ms([0.001, 0.002, 0.003, 0.004])
    assert s["min"] == pytest.approx(1) and s["max"] == pytest.approx(4) and s["median"] == pytest.approx(2.5)
    entry = Manifest.load(artifacts).find(artifacts / "model.tflite")
    with open_runner(artifacts / "model.tflite", threads=1) as r:
        out = timed(r, random_inputs(entry.input), Plan(runs=50, min_seconds=0))
    assert out["runs"] == 50 and len(out["samples_ms"]) == 50
    # Throughput comes from the samples the percentiles come from, not from the loop's wall time.
    assert out["throughput_ips"] == pytest.approx(50 / (sum(out["samples_ms"]) / 1e3))
    lat = out["latency_ms"]
    assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]


def test_default_plan_measures_by_count_and_by_time(artifacts):
    """benchmark_model's rule: at least 50 runs and at least 1 s, after at least 10 runs and 0.5 s of warm-up."""
    from edgecn.runner.measure import first_and_warmup

    entry = Manifest.load(artifacts).find(artifacts / "model.tflite")
    plan = Plan()
    with open_runner(artifacts / "model.tflite", threads=1) as r:
        feed = random_inputs(entry.input)
        _, warm = first_and_warmup(r, feed, plan)
        out = timed(r, feed, plan)
    assert len(warm) >= 10 and out["runs"] >= 50 and out["wall_s"] >= 1.0
    assert not Plan(runs=3).done(3, 0.5) and Plan(runs=3).done(3, 1.0) and Plan(max_seconds=2).done(1, 2.0)


def test_realtime_pacing_has_no_drift(artifacts):
    """30 frames at 100 fps take ~0.3 s on an absolute schedule; a fast model misses nothing."""
    entry = Manifest.load(artifacts).find(artifacts / "model.tflite")
    with open_runner(artifacts / "model.tflite", threads=1) as r:
        out = realtime(r, random_inputs(entry.input), Plan(runs=30, min_seconds=0, fps=100))
    rt = out["realtime"]
    # A loop that keeps up achieves the target rate exactly, never more (it once said 30.3 for 30).
    if rt["dropped_frames"] == 0:
        assert rt["achieved_fps"] == pytest.approx(100.0)
    assert rt["achieved_fps"] <= 100.0 + 1e-9
    starts = np.asarray(out["start_offsets_s"])
    assert rt["processed"] + rt["dropped_frames"] == rt["frames"]
    assert starts[-1] == pytest.approx((rt["frames"] - 1) * 0.01, abs=0.005)  # no accumulated drift
    assert rt["jitter_ms"]["median"] < 2.0
    assert rt["deadline_misses"] <= 2


def test_realtime_counts_drops_when_too_slow(artifacts):
    """At 20 kHz a frame period (50 us) is shorter than one inference plus bookkeeping: drops and misses show."""
    entry = Manifest.load(artifacts).find(artifacts / "model.onnx")
    with open_runner(artifacts / "model.onnx", threads=1) as r:
        rt = realtime(r, random_inputs(entry.input), Plan(runs=200, min_seconds=0, fps=20000))["realtime"]
    assert rt["dropped_frames"] > 0 and rt["deadline_misses"] > 0


def test_a_frame_due_after_the_plan_ends_is_not_waited_for(artifacts):
    """--fps 0.001: the next frame would come in 1000 s; the plan ends at 0.5 s, so the run does."""
    import time

    entry = Manifest.load(artifacts).find(artifacts / "model.tflite")
    with open_runner(artifacts / "model.tflite", threads=1) as r:
        start = time.perf_counter()
        out = realtime(r, random_inputs(entry.input), Plan(runs=5, min_seconds=0, max_seconds=0.5, fps=0.001))
    assert time.perf_counter() - start < 10 and out["realtime"]["processed"] == 1
