"""Tampering: an artifact that differs from its manifest is refused; a checkpoint that carries code is
refused without running it (the payload would create a file; the file never appears)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import pytest
import torch

from robust_helpers import COUNTS, ENV, edgecn


def test_profile_refuses_an_artifact_whose_sha256_differs_from_the_manifest(build_dir, tmp_path):
    folder = tmp_path / "b"
    shutil.copytree(build_dir, folder)
    onnx = folder / "condensenet-light-fp32.onnx"
    ok = edgecn(["profile", onnx, "--runs", "2", "--warmup", "0"], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the weights: still a structurally valid model
    onnx.write_bytes(bytes(data))
    refused = edgecn(["profile", onnx, "--runs", "2"], cwd=tmp_path)
    COUNTS["bad_inputs"] += 1
    assert refused.returncode == 2 and "cannot be verified" in refused.stderr, refused.stderr[-2000:]
    assert "Fix:" in refused.stderr and "--force" in refused.stderr and "Traceback" not in refused.stderr
    forced = edgecn(["profile", onnx, "--runs", "2", "--warmup", "0", "--force"], cwd=tmp_path)
    assert forced.returncode == 0, "the refusal came from something other than the checksum"


def _tampered(src, dst):
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0x01
    dst.write_bytes(bytes(data))


def test_symlinked_or_unlisted_tampered_artifacts_are_refused(build_dir, tmp_path):
    """Every artifact of the build, three ways: replaced by a link to a tampered file outside the
    folder, saved tampered under a name the manifest does not list (both refused without --force),
    and linked within the folder under a new name (verified against the file it names)."""
    from edgecn.errors import EdgecnError
    from edgecn.runner.manifest import Manifest
    from edgecn.runner.profile import verify

    folder = tmp_path / "b"
    shutil.copytree(build_dir, folder)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    tried = 0
    for entry in Manifest.load(folder).artifacts:
        name = entry.path.name
        _tampered(folder / name, outside / name)
        _tampered(folder / name, folder / f"copy-{name}")
        (folder / f"alias-{name}").symlink_to(name)
        real = folder / f"real-{name}"
        os.replace(folder / name, real)
        (folder / name).symlink_to(outside / name)
        for bad, why in ((folder / name, "outside its build folder"), (folder / f"copy-{name}", "does not list it")):
            with pytest.raises(EdgecnError, match=why) as e:
                verify(bad, force=False)
            assert "--force" in e.value.fix
            assert verify(bad, force=True)[1]["verified"] is False
            tried += 1
        os.replace(real, folder / name)
        entry_found, info = verify(folder / f"alias-{name}", force=False)
        assert info["verified"] and entry_found.path.name == name
        tried += 1
    COUNTS["bad_inputs"] += tried
    assert tried >= 6


class _Payload:
    """Unpickling this runs ``touch PATH``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _evil_checkpoint(path, marker) -> None:
    payload = {"format": "edgecn-checkpoint", "version": 1,
               "config": {"name": "condensenet-light", "num_classes": 10, "input_size": 16},
               "state_dict": {}, "extra": {"kind": "train-state", "note": _Payload(marker)}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    _evil_checkpoint(evil, marker)
    # Control: an unrestricted load really runs the payload.
    control = subprocess.run([sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1], weights_only=False)",
                              str(evil)], capture_output=True, text=True, env=ENV)
    assert marker.exists(), f"the payload does not work, so the test would prove nothing: {control.stderr[-1000:]}"
    marker.unlink()
    _evil_checkpoint(tmp_path / "run" / "last.pt", marker)
    for args in (["condense", evil], ["build", "--target", "jetson", "--checkpoint", evil, "--out", "out"],
                 ["train", "--out", "run", "--resume", "--input-size", "8", "--epochs", "1", "--quiet"]):
        proc = edgecn(args, cwd=tmp_path)
        COUNTS["bad_inputs"] += 1
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "refusing to load it" in proc.stderr and "Fix:" in proc.stderr and "Traceback" not in proc.stderr
        assert not marker.exists(), f"`edgecn {args[0]}` ran the pickled payload"
