"""Damaged artifacts give one clear error line and exit 2, never a crash (each run in its own process)."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from runner_helpers import REPO

KINDS = ("tflite", "onnx", "pte")


def _variants(data: bytes, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    flips = {}
    for k in range(3):
        b = bytearray(data)
        for _ in range(4):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        flips[f"bitflip{k}"] = bytes(b)
    return {"empty": b"", "truncated": data[: len(data) // 2], "header-only": data[:24],
            "random": rng.randbytes(len(data)), **flips}


@pytest.fixture(scope="module")
def outcomes(artifacts, tmp_path_factory, native_env):
    """Run every damaged file at once (in parallel processes); returns {(kind, variant): (rc, stderr)}."""
    folder = tmp_path_factory.mktemp("corrupt")  # no manifest here: the checks, not the sha, must catch them
    procs = {}
    for kind in KINDS:
        for name, data in _variants((artifacts / f"model.{kind}").read_bytes(), seed=len(kind)).items():
            path = folder / f"{name}.{kind}"
            path.write_bytes(data)
            procs[(kind, name)] = subprocess.Popen([sys.executable, "-m", "edgecn.runner", str(path), "--runs", "3",
                                                    "--warmup", "0", "--threads", "1"], cwd=REPO, text=True,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=native_env)
    return {key: (p.wait(timeout=300), p.communicate()[1]) for key, p in procs.items()}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", ["empty", "truncated", "header-only", "random"])
def test_broken_files_refused(outcomes, kind, variant):
    rc, err = outcomes[(kind, variant)]
    assert rc == 2, err[-1500:]
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", ["bitflip0", "bitflip1", "bitflip2"])
def test_bit_flips_never_crash(outcomes, kind, variant):
    """A flip in weights still runs (rc 0); one in structure must be refused (rc 2); a signal is a failure."""
    rc, err = outcomes[(kind, variant)]
    assert rc in (0, 2), f"exit {rc}: {err[-1500:]}"
    if rc == 2:
        assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("size", [0, 100])
def test_engine_size_checked(tmp_path, size):
    from edgecn.errors import EdgecnError
    from edgecn.runner.check import check_artifact

    p = tmp_path / "m.engine"
    p.write_bytes(os.urandom(size))
    with pytest.raises(EdgecnError, match="empty|TensorRT engine is larger"):
        check_artifact(p)


def test_onnx_walk_without_onnx_package(artifacts, tmp_path):
    """The fallback protobuf walk (devices without the onnx package) accepts the real file and rejects a cut one."""
    from edgecn.errors import EdgecnError
    from edgecn.runner.check import _walk_protobuf

    data = (artifacts / "model.onnx").read_bytes()
    _walk_protobuf(tmp_path / "m.onnx", data)
    with pytest.raises(EdgecnError):
        _walk_protobuf(tmp_path / "m.onnx", data[: len(data) - 7])


@pytest.mark.tensorrt
def test_tensorrt_engine_runs():
    pytest.importorskip("tensorrt", reason="the tensorrt package ships with JetPack; not installable here")
