"""The native .pte engine: edgecn's C++ runner against the executorch wheel's libraries, without torch.

Each engine runs in its own process (ExecuTorch's thread pool is sized once per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from runner_helpers import REPO, run_runner

# Runs one engine on fixed inputs, saves the outputs, and says whether torch was imported.
OUTPUTS = """
import sys, numpy as np
from edgecn.runner import open_runner
path, out = sys.argv[1], sys.argv[2]
x = np.random.default_rng(0).uniform(-1, 1, (6, 1, 1, 8, 8)).astype(np.float32)
with open_runner(path, threads=1) as r:
    np.save(out, np.stack([r.infer(a) for a in x]))
    print(r.engine, r.versions()["pte engine"], "torch" in sys.modules)
"""


def _outputs(path, engine_env: dict, out) -> tuple[np.ndarray, str]:
    proc = subprocess.run([sys.executable, "-c", OUTPUTS, str(path), str(out)], capture_output=True, text=True,
                          env=engine_env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out), proc.stdout.strip()


@pytest.mark.parametrize("program", ["int8/model.pte", "model.pte"])
def test_native_engine_matches_the_python_engine_without_importing_torch(artifacts, native_env, tmp_path, program):
    native, said = _outputs(artifacts / program, native_env, tmp_path / "native.npy")
    python, said_py = _outputs(artifacts / program, dict(native_env, EDGECN_PTE_ENGINE="python"), tmp_path / "py.npy")
    assert said.startswith("native native (edgecn-pte-runner") and said.endswith("False"), said
    assert said_py == "python python True"
    # The same program and XNNPACK kernels: int8 bit for bit; fp32 too in practice (1e-6 allowed).
    if program.startswith("int8"):
        np.testing.assert_array_equal(native, python)
    else:
        np.testing.assert_allclose(native, python, rtol=1e-6, atol=1e-6)
    assert native.std() > 0  # the inputs differ, and so do the outputs


def test_profile_with_the_native_engine_scores_like_the_python_engine(artifacts, native_env):
    docs = {}
    for engine in ("native", "python"):
        proc = run_runner(artifacts / "model.pte", "--runs", "20", "--threads", "1", "--accuracy", "--op-profile",
                          "--json", "--pte-engine", engine, env=native_env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        docs[engine] = json.loads(proc.stdout)["results"][0]
    native, python = docs["native"], docs["python"]
    assert native["accuracy"]["top1"] == python["accuracy"]["top1"] > 50
    assert native["integrity"]["verified"] and native["runs"] == 20 and 0 < native["latency_ms"]["median"] < 100
    assert native["versions"]["pte engine"].startswith("native")
    for doc in (native, python):  # per-op tables, wrapper events (which span the ops) left out
        ops = [o["op"] for o in doc["op_profile"]["ops"]]
        assert doc["op_profile"]["available"] and not {"DELEGATE_CALL", "Method::execute"} & set(ops), ops
    assert any(op.startswith("Convolution") for op in [o["op"] for o in native["op_profile"]["ops"]])


def test_a_program_that_fails_verification_is_a_user_error(artifacts, native_env, tmp_path):
    """Damage past the header that the structural check lets through: refused by ExecuTorch's verifier, no crash."""
    data = bytearray((artifacts / "int8" / "model.pte").read_bytes())
    for i in range(200, 400):
        data[i] ^= 0xFF
    bad = tmp_path / "bad.pte"
    bad.write_bytes(bytes(data))
    proc = run_runner(bad, "--runs", "3", env=native_env)
    assert proc.returncode == 2 and "could not load" in proc.stderr and "Fix:" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_build_errors_say_what_to_do(native_env, tmp_path):
    def build(*args, **env):
        return subprocess.run([sys.executable, "-m", "edgecn.runner.native", *args], capture_output=True, text=True,
                              env=dict(native_env, **env), cwd=REPO, timeout=300)

    proc = build("--out", str(tmp_path / "runner"), "--cxx", "/bin/false")
    assert proc.returncode == 2 and "compiling the native .pte runner failed" in proc.stderr
    assert os.listdir(tmp_path) == []  # no half-written binary, no staged source
    proc = build()
    assert proc.returncode == 0 and proc.stdout.startswith("already built: ")


def test_an_explicit_runner_that_is_not_executable_is_refused(artifacts, native_env, tmp_path):
    fake = tmp_path / "edgecn-pte-runner"
    fake.write_text("not a program")
    proc = run_runner(artifacts / "model.pte", "--runs", "3", env=dict(native_env, EDGECN_PTE_RUNNER=str(fake)))
    assert proc.returncode == 2 and "EDGECN_PTE_RUNNER" in proc.stderr and "not an executable" in proc.stderr


def test_the_remote_runner_zip_carries_the_source_and_reads_it_from_the_zip(tmp_path):
    """A device profiling over ssh compiles the runner from the zip it was sent (``-S``: edgecn from the zip only)."""
    from pathlib import Path

    from edgecn.runner import native
    from edgecn.runner.remote import runner_zip

    z = runner_zip(tmp_path / "runner.zip")
    code = "import edgecn.runner.native as n, sys; sys.stdout.buffer.write(n.source())"
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, env={"PYTHONPATH": f"{z}:{Path(np.__file__).parents[1]}"},
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0 and proc.stdout == native.source(), proc.stderr[-2000:]


def test_a_damaged_etdump_is_a_user_error_not_a_crash(tmp_path):
    from edgecn.errors import EdgecnError
    from edgecn.runner.etdump import profile_events

    for data in (b"", b"\x10\x00\x00\x00" + b"\x00" * 12, b"\x40\x00\x00\x00\x08\x00\x00\x00ED00" + b"\xff" * 52):
        with pytest.raises(EdgecnError):
            profile_events(data)


def test_a_thread_sweep_builds_the_native_runner_once_before_its_children_start(artifacts, native_env, tmp_path):
    env = dict(native_env, EDGECN_CACHE=str(tmp_path / "fresh-cache"))
    proc = run_runner(artifacts / "int8" / "model.pte", "--threads", "1,2", "--runs", "5", "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("compiling the native .pte runner") == 1, proc.stderr
    assert [r["threads"] for r in json.loads(proc.stdout)["results"]] == [1, 2]
