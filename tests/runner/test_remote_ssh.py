"""--remote against a real OpenSSH server on 127.0.0.1 started by the test, with hostile file names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner_helpers import REPO
from sshd_helpers import sshd

HOSTILE = "a b;$(touch pwned)'\".tflite"


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def test_remote_profile_with_hostile_names(ssh_server, artifacts, tmp_path):
    work = tmp_path / "build dir"
    work.mkdir()
    shutil.copy(artifacts / "model.tflite", work / HOSTILE)
    manifest = json.loads((artifacts / "manifest.json").read_text())
    manifest["artifacts"] = [dict(a, path=HOSTILE) for a in manifest["artifacts"] if a["path"] == "model.tflite"]
    (work / "manifest.json").write_text(json.dumps(manifest))
    cmd = [sys.executable, "-m", "edgecn.runner", str(work / HOSTILE), "--runs", "20", "--json", "--threads", "1",
           "--remote", ssh_server["url"], "--remote-python", sys.executable, "--ssh-key", str(ssh_server["key"]),
           "--ssh-option", "StrictHostKeyChecking=no", "--ssh-option", f"UserKnownHostsFile={ssh_server['known']}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)["results"][0]
    assert r["name"] == HOSTILE and r["remote"]["host"].endswith("127.0.0.1")
    assert r["runs"] == 20 and r["integrity"]["verified"] and r["latency_ms"]["median"] > 0
    for where in (tmp_path, work, REPO, Path.home(), Path("/tmp")):
        assert not (where / "pwned").exists(), f"a file name reached a shell: {where / 'pwned'}"


def test_remote_errors_come_back_as_one_line(ssh_server, artifacts, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    cmd = [sys.executable, "-m", "edgecn.runner", str(bad), "--remote", ssh_server["url"], "--remote-python",
           sys.executable, "--ssh-key", str(ssh_server["key"]), "--ssh-option", "StrictHostKeyChecking=no",
           "--ssh-option", f"UserKnownHostsFile={ssh_server['known']}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "TFL3" in proc.stderr and "Traceback" not in proc.stderr


def test_tune_times_every_form_on_the_remote_device(ssh_server):
    """The host compiles the forms, the device times them through the runner, the table records the device."""
    pytest.importorskip("litert_torch")
    import torch
    from torch import nn

    from edgecn.cost.measure import Timer
    from edgecn.cost.table import CostTable
    from edgecn.cost.tune import tune
    from edgecn.lowering import LoweringConfig

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=8),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    timer = Timer("tflite", threads=1, runs=10, warmup=2, remote=ssh_server["url"], remote_python=sys.executable,
                  ssh_key=str(ssh_server["key"]),
                  ssh_options=("StrictHostKeyChecking=no", f"UserKnownHostsFile={ssh_server['known']}"))
    lines: list[str] = []
    table = CostTable("tflite", 1)
    result = tune(model, LoweringConfig(), torch.randn(1, 3, 8, 8), table, timer, say=lines.append, check_whole=False)
    assert any("on ssh://" in line for line in lines)
    assert table.machine["cpu"] and len(table.segments) >= 4 and not result.failed
    grouped = max(result.rows, key=lambda r: r.alternatives)
    assert grouped.alternatives >= 3 and grouped.ms <= grouped.target_ms


def _remote(ssh_server, known: Path, *args) -> list[str]:
    return [sys.executable, "-m", "edgecn.runner", *map(str, args), "--remote", ssh_server["url"], "--remote-python",
            sys.executable, "--ssh-key", str(ssh_server["key"]), "--ssh-option", f"UserKnownHostsFile={known}"]


def test_an_unknown_host_key_is_a_visible_choice(ssh_server, artifacts, tmp_path):
    known = tmp_path / "known_hosts"
    cmd = _remote(ssh_server, known, artifacts / "model.tflite", "--runs", "5", "--threads", "1")
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert refused.returncode == 2 and "host key" in refused.stderr and "--accept-new-host-key" in refused.stderr
    assert not known.exists() or known.read_text() == ""
    accepted = subprocess.run(cmd + ["--accept-new-host-key"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert accepted.returncode == 0, accepted.stderr[-2000:]
    assert "over ssh: " in accepted.stdout and known.read_text().strip()  # the host is named; its key recorded
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]  # known now, without the flag


def test_a_data_folder_travels_to_the_device(ssh_server, artifacts, tmp_path):
    """--accuracy --data FOLDER over ssh scores the same as here (the folder is copied under a generated name)."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    data = tmp_path / "my data; $(touch pwned)"
    for i in range(0, 200):
        (data / str(d.target[i])).mkdir(parents=True, exist_ok=True)
        np.save(data / str(d.target[i]) / f"{i}.npy", (d.images[i] / 16.0).astype(np.float32)[..., None])
    args = ("--accuracy", "--data", data, "--runs", "5", "--threads", "1", "--json")
    remote = subprocess.run(_remote(ssh_server, ssh_server["known"], artifacts / "model.tflite", *args)
                            + ["--ssh-option", "StrictHostKeyChecking=no"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    local = subprocess.run([sys.executable, "-m", "edgecn.runner", str(artifacts / "model.tflite"), *map(str, args)],
                           capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert remote.returncode == 0 and local.returncode == 0, remote.stderr[-2000:] + local.stderr[-2000:]
    got, want = (json.loads(p.stdout)["results"][0]["accuracy"] for p in (remote, local))
    assert got["top1"] == want["top1"] and got["samples"] == want["samples"] == 200
    assert not any(p.name == "pwned" for p in tmp_path.rglob("pwned")) and not (Path.home() / "pwned").exists()


def test_a_remote_python_without_the_runtime_is_named_with_the_fix(ssh_server, artifacts, tmp_path):
    import venv

    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)  # no numpy, no interpreter
    cmd = _remote(ssh_server, ssh_server["known"], artifacts / "model.tflite", "--runs", "5") + [
        "--ssh-option", "StrictHostKeyChecking=no"]
    cmd[cmd.index("--remote-python") + 1] = str(bare / "bin" / "python")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "lacks numpy, a runtime for .tflite" in proc.stderr and "--remote-python" in proc.stderr


def test_only_regular_image_files_inside_the_data_folder_go_to_the_device(ssh_server, artifacts, tmp_path):
    """A link in --data (to a file or folder outside it) is not followed; what is skipped is said."""
    import numpy as np

    from edgecn.runner.remote import stage_data

    outside = tmp_path / "outside"
    (outside / "keys").mkdir(parents=True)
    np.save(outside / "secret.npy", np.full((8, 8), 0.5, np.float32))
    (outside / "keys" / "id_ed25519.npy").write_bytes((outside / "secret.npy").read_bytes())
    data = tmp_path / "data"
    for label in ("0", "1"):
        (data / label).mkdir(parents=True)
        for i in range(3):
            np.save(data / label / f"{i}.npy", np.random.default_rng(i).random((8, 8), dtype=np.float32))
    (data / "0" / "secret.npy").symlink_to(outside / "secret.npy")
    (data / "1" / "keys").symlink_to(outside / "keys")
    (data / "notes.txt").write_text("not an image")
    os.mkfifo(data / "0" / "pipe.npy")
    stage = tmp_path / "stage"
    stage.mkdir()
    said: list[str] = []
    staged, skipped = stage_data(data, stage, say=said.append)
    assert staged == 6 and sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*.npy")) == [
        f"{label}/{i}.npy" for label in ("0", "1") for i in range(3)]
    assert not any(p.is_symlink() for p in stage.rglob("*"))
    assert len(skipped) == 4 and "0/secret.npy (a link)" in said[0] and "1/keys/ (a link to a folder)" in said[0]
    proc = subprocess.run(_remote(ssh_server, ssh_server["known"], artifacts / "model.tflite", "--accuracy", "--data",
                                  data, "--runs", "3", "--threads", "1", "--json")
                          + ["--ssh-option", "StrictHostKeyChecking=no"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["results"][0]["accuracy"]["samples"] == 6  # the links' targets were not scored
    assert "not sent to the device" in proc.stderr and "secret.npy (a link)" in proc.stderr


def test_an_artifact_copied_alone_profiles_on_the_device_as_here(ssh_server, rpi5_build, tmp_path):
    """A .tflite without its build folder carries its spec; --remote runs it as a local profile does."""
    (art,) = [p for p in rpi5_build.iterdir() if p.name.endswith("int8.tflite")]
    alone = Path(shutil.copy(art, tmp_path / "model.tflite"))
    args = ("--accuracy", "--data", "digits", "--runs", "3", "--threads", "1", "--json")
    remote = subprocess.run(_remote(ssh_server, ssh_server["known"], alone, *args)
                            + ["--ssh-option", "StrictHostKeyChecking=no"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    local = subprocess.run([sys.executable, "-m", "edgecn.runner", str(alone), *args], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
    assert remote.returncode == 0 and local.returncode == 0, remote.stderr[-2000:] + local.stderr[-2000:]
    got, want = (json.loads(p.stdout)["results"][0] for p in (remote, local))
    assert got["accuracy"] == want["accuracy"] and got["accuracy"]["samples"] == 359
    assert got["integrity"]["verified"] is False and got["integrity"]["spec"] == "carried by the artifact"
