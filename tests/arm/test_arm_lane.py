"""Artifacts of an rpi5 build on emulated ARM cores agree with x86 (outputs only: emulated time means nothing)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SUMMARY, artifacts_of
from emulator import CPUS

INT8_STEPS_TFLITE_RUNTIME = 4
"""tflite-runtime 2.14 never hands int8 models to XNNPACK; its own int8 kernels round differently
from XNNPACK's, by up to this many quantization steps of the output (the runtime, not a bug)."""


def _manifest_top1(build) -> dict[str, float]:
    return {a["path"]: a["top1"] for a in json.loads((build / "manifest.json").read_text())["artifacts"]}


def _compare(arm: dict, x86: dict) -> dict:
    raw, ref = arm["raw"].astype(np.float64), x86["raw"].astype(np.float64)
    np.testing.assert_array_equal(arm["labels"], x86["labels"])  # the same images, in the same order
    return {"max_steps": float(np.abs(raw - ref).max()),
            "rel": float(np.abs(raw - ref).max() / max(np.abs(ref).max(), 1e-12)),
            "argmax": float(np.mean(arm["logits"].reshape(len(raw), -1).argmax(1)
                                    == x86["logits"].reshape(len(ref), -1).argmax(1)))}


@pytest.mark.parametrize("cpu", list(CPUS))
def test_litert_and_the_native_pte_runner_on_arm_agree_with_x86(cpu, arm_outputs, x86_outputs, rpi5_build):
    """ai-edge-litert (XNNPACK) and edgecn's native .pte runner: int8 bit-identical, fp32 within 1e-4 relative."""
    indices, outputs, said = arm_outputs[(cpu, "litert")]
    arts = artifacts_of(rpi5_build)
    assert len(indices) == 4  # fp32 and int8, .tflite and .pte
    worst = {"int8": 0.0, "fp32": 0.0}
    for i, out, who in zip(indices, outputs, said):
        art = arts[i]
        assert who["runtime"] == ("executorch" if art.suffix == ".pte" else "litert"), who
        if art.suffix == ".pte":
            assert who["versions"]["runner"].startswith("edgecn-pte-runner") and not who["torch"], who
        c = _compare(out, x86_outputs[i])
        if "int8" in art.name:
            assert c["max_steps"] == 0, f"{art.name} on {cpu}: int8 outputs differ from x86 by {c['max_steps']} steps"
        else:
            assert c["rel"] <= 1e-4, f"{art.name} on {cpu}: fp32 differs from x86 by {c['rel']:.2e} relative"
        worst["int8" if "int8" in art.name else "fp32"] = max(worst["int8" if "int8" in art.name else "fp32"],
                                                              c["max_steps"] if "int8" in art.name else c["rel"])
        assert c["argmax"] == 1.0, f"{art.name} on {cpu}: argmax differs from x86 on {1 - c['argmax']:.1%} of images"
    SUMMARY[f"litert+native-{cpu}"] = [
        f"{cpu}: {len(indices)} artifacts (.tflite via ai-edge-litert, .pte via the native runner built on the device) "
        f"on {len(outputs[0]['labels'])} held-out digits: int8 bit-identical to x86, fp32 within {worst['fp32']:.1e} "
        "relative, argmax equal"]


def test_tflite_runtime_214_on_arm_agrees_with_x86_within_its_rounding(arm_outputs, x86_outputs, rpi5_build):
    indices, outputs, said = arm_outputs[("cortex-a72", "tflite-runtime")]
    arts = artifacts_of(rpi5_build)
    assert len(indices) == 2 and all(w["versions"].get("tflite-runtime") == "2.14.0" for w in said), said
    lines = []
    for i, out, who in zip(indices, outputs, said):
        art, c = arts[i], _compare(out, x86_outputs[i])
        if "int8" in art.name:
            assert c["max_steps"] <= INT8_STEPS_TFLITE_RUNTIME, f"{art.name}: {c['max_steps']} quantization steps from x86"
            # An answer may change only where x86's top two logits lie within that rounding of each other.
            ref = x86_outputs[i]["logits"].reshape(len(out["raw"]), -1)
            mine = out["logits"].reshape(len(out["raw"]), -1).argmax(1)
            flipped = np.flatnonzero(mine != ref.argmax(1))
            margins = ref[flipped, ref.argmax(1)[flipped]] - ref[flipped, mine[flipped]]
            bound = 2 * c["max_steps"] * who["quant"]["scale"]
            assert np.all(margins <= bound + 1e-6), f"{art.name}: answers changed beyond rounding ({margins} > {bound})"
            lines.append(f"int8 within {c['max_steps']:.0f} steps ({len(flipped)} of {len(mine)} answers changed, "
                         "each a near-tie)")
        else:
            assert c["rel"] <= 1e-4, f"{art.name}: fp32 differs from x86 by {c['rel']:.2e} relative"
            assert c["argmax"] == 1.0, f"{art.name}: fp32 argmax differs from x86"
            lines.append(f"fp32 within {c['rel']:.1e} relative")
    SUMMARY["tflite-runtime"] = [f"cortex-a72 tflite-runtime 2.14: " + ", ".join(lines)]


def test_edgecn_profile_on_arm_sweeps_threads_verifies_and_scores(emulator, native_on_arm, rpi5_build, held_out):
    """The profiler as a user runs it on a Pi: two artifacts, a thread sweep (one child process each), --accuracy."""
    int8 = [p for p in artifacts_of(rpi5_build) if "int8" in p.name]
    proc = emulator.run(["/usr/bin/python3.11", "-m", "edgecn.runner", *map(str, int8), "--threads", "1,2",
                         "--runs", "5", "--warmup", "1", "--accuracy", "--data", str(held_out), "--json"],
                        cpu="cortex-a76", env=native_on_arm, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    expected = _manifest_top1(rpi5_build)
    assert [(r["name"], r["threads"]) for r in doc["results"]] == [(p.name, t) for p in int8 for t in (1, 2)]
    for r in doc["results"]:
        assert r["integrity"]["verified"] and r["runs"] == 5
        assert r["accuracy"]["top1"] == expected[r["name"]], (r["name"], r["accuracy"], expected[r["name"]])
    assert doc["environment"]["machine"] == "aarch64", doc["environment"]
    SUMMARY["profile"] = ["`edgecn profile --threads 1,2 --accuracy` of the int8 .tflite and .pte on cortex-a76: "
                          f"sha256 verified, top-1 on all {doc['results'][0]['accuracy']['samples']} held-out digits "
                          "equal to the manifest's"]
