"""The ARM lane: the artifacts of a real build for a Raspberry Pi 5, run on emulated Cortex-A72 and
Cortex-A76 cores (qemu user mode) by edgecn's torch-free runner, compared with the same artifacts on x86.

Timings under emulation mean nothing; only the outputs are compared. See emulator.py for what
the emulated machine is made of.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emulator import CPUS, REPO, Emulator, unavailable

HERE = Path(__file__).resolve().parent
SUMMARY: dict[str, list[str]] = {}
"""What the lane compared, one line per check, for the closing line of the test run."""


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        lines = [line for group in SUMMARY.values() for line in group]
        terminalreporter.write_line("arm lane (qemu-aarch64, Debian bookworm arm64, python 3.11): " + "; ".join(lines))


@pytest.fixture(scope="session")
def emulator() -> Emulator:
    why = unavailable()
    if why:
        pytest.skip(why)
    return Emulator.prepare(say=lambda line: print(line, file=sys.stderr))


@pytest.fixture(scope="session")
def held_out(tmp_path_factory) -> Path:
    """The held-out digits the build scored, as .npy images in class folders (the guest has no scikit-learn)."""
    from sklearn.datasets import load_digits

    from edgecn.splits import stratified_split

    folder = tmp_path_factory.mktemp("held-out-digits")
    d = load_digits()
    _, held = stratified_split(np.asarray(d.target))
    for i in held:
        (folder / str(d.target[i])).mkdir(exist_ok=True)
        np.save(folder / str(d.target[i]) / f"{i:04d}.npy", (d.images[i] / 16.0).astype(np.float32)[..., None])
    return folder


@pytest.fixture(scope="session")
def held_out_sample(held_out, tmp_path_factory) -> Path:
    """Eight held-out images per class: emulated float math is slow (359 images x 4 artifacts took 2.5 min
    per core), and the full split is scored on ARM by the profile test."""
    import shutil

    folder = tmp_path_factory.mktemp("held-out-sample")
    for cls in sorted(held_out.iterdir()):
        (folder / cls.name).mkdir()
        for f in sorted(cls.iterdir())[:8]:
            shutil.copy(f, folder / cls.name / f.name)
    return folder


@pytest.fixture(scope="session")
def native_on_arm(emulator, tmp_path_factory) -> dict:
    """edgecn's native .pte runner, compiled on the emulated device by its own g++; the guest environment."""
    env = {"EDGECN_CACHE_DIR": str(tmp_path_factory.mktemp("arm-cache"))}
    proc = emulator.run(["/usr/bin/python3.11", "-m", "edgecn.runner.native", "--wheel", str(emulator.executorch_wheel)],
                        env=env, timeout=1800)
    assert proc.returncode == 0 and proc.stdout.startswith("built: "), proc.stdout + proc.stderr[-3000:]
    return env


def artifacts_of(build: Path) -> list[Path]:
    return sorted(p for p in build.iterdir() if p.suffix in (".tflite", ".pte"))


def read_outputs(path: Path, n: int) -> list[dict]:
    z = np.load(path)
    return [{"raw": z[f"raw{i}"], "logits": z[f"logits{i}"], "labels": z[f"labels{i}"]} for i in range(n)]


@pytest.fixture(scope="session")
def x86_outputs(rpi5_build, held_out_sample, tmp_path_factory) -> list[dict]:
    """Each artifact on this x86 host, through the same runner."""
    out = tmp_path_factory.mktemp("x86") / "outputs.npz"
    arts = artifacts_of(rpi5_build)
    proc = subprocess.run([sys.executable, str(HERE / "outputs.py"), str(out), str(held_out_sample), *map(str, arts)],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_outputs(out, len(arts))


@pytest.fixture(scope="session")
def arm_outputs(emulator, native_on_arm, rpi5_build, held_out_sample, tmp_path_factory) -> dict:
    """{(cpu, site): (outputs per artifact, what ran them)}: ai-edge-litert on both cores, tflite-runtime on the A72."""
    arts = artifacts_of(rpi5_build)
    runs = {}
    for cpu, site in [*((c, "litert") for c in CPUS), ("cortex-a72", "tflite-runtime")]:
        chosen = arts if site == "litert" else [a for a in arts if a.suffix == ".tflite"]
        out = tmp_path_factory.mktemp(f"arm-{cpu}-{site}") / "outputs.npz"
        proc = emulator.run(["/usr/bin/python3.11", "/edgecn/tests/arm/outputs.py", str(out), str(held_out_sample),
                             *map(str, chosen)], cpu=cpu, site=site, env=native_on_arm, timeout=1800)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
        said = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        runs[(cpu, site)] = ([arts.index(a) for a in chosen], read_outputs(out, len(chosen)), said)
    return runs
