"""The .pte runner: edgecn's C++ program against the executorch wheel's libraries, without torch.

Compared with ExecuTorch's own Python binding (the tests' reference), each in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from runner_helpers import BINDING_OUTPUTS, REPO, RUNNER_OUTPUTS, outputs, run_runner

@pytest.mark.parametrize("program", ["int8/model.pte", "model.pte"])
def test_the_runner_matches_executorchs_python_binding_without_importing_torch(artifacts, native_env, tmp_path, program):
    native, torch_loaded = outputs(RUNNER_OUTPUTS, artifacts / program, tmp_path / "native.npy", env=native_env)
    reference, _ = outputs(BINDING_OUTPUTS, artifacts / program, tmp_path / "binding.npy")
    assert torch_loaded == "False"
    # The same program and XNNPACK kernels: int8 bit for bit; fp32 too in practice (1e-6 allowed).
    if program.startswith("int8"):
        np.testing.assert_array_equal(native, reference)
    else:
        np.testing.assert_allclose(native, reference, rtol=1e-6, atol=1e-6)
    assert native.std() > 0  # the inputs differ, and so do the outputs


def test_profile_scores_and_times_ops_of_a_pte(artifacts, native_env):
    docs = {}
    for name in ("model.pte", "model.tflite"):  # the same trained model in two runtimes
        proc = run_runner(artifacts / name, "--runs", "20", "--threads", "1", "--accuracy", "--op-profile", "--json",
                          env=native_env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        docs[name] = json.loads(proc.stdout)["results"][0]
    pte = docs["model.pte"]
    assert pte["accuracy"]["top1"] > 50 and abs(pte["accuracy"]["top1"] - docs["model.tflite"]["accuracy"]["top1"]) < 0.6
    assert pte["integrity"]["verified"] and pte["runs"] == 20 and 0 < pte["latency_ms"]["median"] < 100
    assert pte["versions"]["runner"].startswith("edgecn-pte-runner")
    ops = [o["op"] for o in pte["op_profile"]["ops"]]  # per op type; the events spanning others left out
    assert pte["op_profile"]["available"] and not {"DELEGATE_CALL", "Method::execute"} & set(ops), ops
    assert any(op.startswith("Convolution") for op in ops), ops


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
    env = dict(native_env, EDGECN_CACHE_DIR=str(tmp_path / "fresh-cache"))
    proc = run_runner(artifacts / "int8" / "model.pte", "--threads", "1,2", "--runs", "5", "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("compiling the native .pte runner") == 1, proc.stderr
    assert [r["threads"] for r in json.loads(proc.stdout)["results"]] == [1, 2]


def test_a_channels_last_program_takes_and_returns_tensors_in_its_memory_order(native_env, tmp_path):
    """A .pte exported from a channels-last input keeps NHWC bytes at its ends; the runner feeds
    and reads them in that order (it used to hand NCHW bytes over, and ExecuTorch refused)."""
    torch = pytest.importorskip("torch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 6, 5)
    ep = torch.export.export(model, (x.contiguous(memory_format=torch.channels_last),))
    path = tmp_path / "cl.pte"
    path.write_bytes(to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)
    np.save(tmp_path / "x.npy", x.numpy())
    script = ("import sys, numpy as np\nfrom edgecn.runner import open_runner\n"
              "with open_runner(sys.argv[1], threads=1) as r:\n    np.save(sys.argv[2], r.infer(np.load(sys.argv[3])))\n"
              "print('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "y.npy"), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, env=native_env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "False"
    with torch.no_grad():
        ref = model(x).numpy()
    got = np.load(tmp_path / "y.npy")
    assert got.shape == ref.shape == (1, 4, 6, 5)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
