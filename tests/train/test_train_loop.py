"""The training loop: config validation, reproducibility, resume after SIGKILL, CLI errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgecn.errors import EdgecnError
from edgecn.train import TrainConfig
from killing import kill_after_first_epoch

# A tiny but real run: condensenet-light on 8x8 digits, all condensing stages included.
TINY = ["--input-size", "8", "--batch-size", "128", "--quiet", "--set", "bottleneck=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _edgecn(*args, **kw):
    return subprocess.run([sys.executable, "-m", "edgecn", *args], capture_output=True, text=True, env=ENV,
                          timeout=300, **kw)


def _weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("kw,match", [
    ({"model": "condensenet-lite"}, "did you mean"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 1}, "batch norm"),
    ({"lr": 0.0}, "lr"),
    ({"group_lasso": -1.0}, "group lasso"),
    ({"input_size": 4}, "input size"),
    ({"resume": True, "overwrite": True}, "only one"),
])
def test_config_is_validated(kw, match):
    with pytest.raises(EdgecnError, match=match):
        TrainConfig(**kw)


def test_resume_after_kill_is_bit_identical(tmp_path):
    args = [*TINY, "--batch-size", "256", "--epochs", "3", "--seed", "3"]
    ref = _edgecn("train", *args, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    kill_after_first_epoch([*args, "--out", str(out)], out, ENV, timeout=240)
    epoch = torch.load(out / "last.pt", weights_only=True)["extra"]["epoch"]
    assert 1 <= epoch < 3
    resumed = _edgecn("train", *args, "--out", str(out), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(tmp_path / "ref" / "final.pt"), _weights(out / "final.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # The run really condensed: every learned group conv finished its stages.
    assert all(int(v) == 3 for k, v in b.items() if k.endswith(".stage"))


def test_cli_errors_are_one_line_and_keep_existing_files(tmp_path, capsys):
    from edgecn.cli import main

    out = tmp_path / "run"
    out.mkdir()
    from edgecn.checkpoint import save_checkpoint
    from edgecn.models import create_model

    save_checkpoint(out / "last.pt", create_model("condensenet-light", 10, 8), extra={"kind": "train-state"})
    precious = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(precious[: len(precious) // 2])  # truncated, as by a full disk
    precious = (out / "last.pt").read_bytes()
    cases = [
        (["train", "--model", "nope"], "unknown model"),
        (["train", "--set", "groups=3", "--out", str(tmp_path / "g3")], "does not divide"),
        (["train", "--data", str(tmp_path / "missing")], "neither the embedded"),
        (["train", "--out", str(out)], "already holds a run"),
        (["train", "--out", str(out), "--resume"], "truncated or corrupt"),
        (["train", "--out", str(tmp_path / "none"), "--resume"], "nothing to resume"),
        (["condense", str(out / "last.pt")], "truncated or corrupt"),
    ]
    for args, match in cases:
        argv = [*args, *TINY] if args[0] == "train" else args
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and match in lines[0] and "Traceback" not in err, (args, err)
    assert (out / "last.pt").read_bytes() == precious
    assert not (tmp_path / "g3").exists() or not any((tmp_path / "g3").iterdir())


def test_resume_rejects_other_options_and_other_models(tmp_path, capsys):
    from edgecn.checkpoint import save_checkpoint
    from edgecn.cli import main
    from edgecn.models import create_model

    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "r")]) == 0
    assert main(["train", *TINY, "--epochs", "2", "--out", str(tmp_path / "r"), "--resume"]) == 2
    assert "epochs=1" in capsys.readouterr().err
    squeeze = tmp_path / "s"
    save_checkpoint(squeeze / "last.pt", create_model("squeezenet1_1", 10, 32), extra={"kind": "train-state"})
    assert main(["train", *TINY, "--out", str(squeeze), "--resume"]) == 2
    assert "not a training state of model 'condensenet-light'" in capsys.readouterr().err


def test_json_output_is_only_json_with_progress_on(tmp_path):
    """Epoch lines and the recipe go to stderr; stdout is the result a script parses."""
    import json

    args = [a for a in TINY if a != "--quiet"]
    r = _edgecn("train", *args, "--epochs", "1", "--out", str(tmp_path / "run"), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["epochs"] == 1
    assert "epoch 1/1: loss" in r.stderr and "recipe: condensenet-light at 8 px, sgd lr 0.2 (batch 128)" in r.stderr
