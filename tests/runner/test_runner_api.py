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
        out = timed(r, random_inputs(entry.input), Plan(runs=50))
    assert out["runs"] == 50 and len(out["samples_ms"]) == 50
    lat = out["latency_ms"]
    assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]


def test_realtime_pacing_has_no_drift(artifacts):
    """30 frames at 100 fps take ~0.3 s on an absolute schedule; a fast model misses nothing."""
    entry = Manifest.load(artifacts).find(artifacts / "model.tflite")
    with open_runner(artifacts / "model.tflite", threads=1) as r:
        out = realtime(r, random_inputs(entry.input), Plan(runs=30, fps=100))
    rt = out["realtime"]
    starts = np.asarray(out["start_offsets_s"])
    assert rt["processed"] + rt["dropped_frames"] == rt["frames"]
    assert starts[-1] == pytest.approx((rt["frames"] - 1) * 0.01, abs=0.005)  # no accumulated drift
    assert rt["jitter_ms"]["median"] < 2.0
    assert rt["deadline_misses"] <= 2


def test_realtime_counts_drops_when_too_slow(artifacts):
    """At 20 kHz a frame period (50 us) is shorter than one inference plus bookkeeping: drops and misses show."""
    entry = Manifest.load(artifacts).find(artifacts / "model.onnx")
    with open_runner(artifacts / "model.onnx", threads=1) as r:
        rt = realtime(r, random_inputs(entry.input), Plan(runs=200, fps=20000))["realtime"]
    assert rt["dropped_frames"] > 0 and rt["deadline_misses"] > 0
