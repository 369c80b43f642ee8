"""Training at ImageNet scale converges from its first steps, and a run that diverges stops at once.

CondenseNet-74 at 224x224 on digits diverged within its first steps with the CIFAR rate
(lr 0.1 at batch 64: first-epoch loss 8-9.5, chance 2.3) and trained on at chance for its whole
schedule. The cause is the model, not the input size: its classifier reads 2,064 pooled
features, and the same first-step blow-up happens at 64x64 (loss 3.2 -> 13 in 5 steps), which a
test can afford.
"""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from edgecn.train import TrainConfig, train
from edgecn.train.guard import DivergenceGuard, TrainingDiverged


def test_the_guard_ignores_a_spike_and_stops_a_run_that_stays_above_chance():
    guard = DivergenceGuard(classes=10, steps_per_epoch=20)  # window: 10 steps
    assert guard.window == 10 and guard.limit == pytest.approx(2 * math.log(10))
    assert all(guard.verdict(v) is None for v in [2.3] * 9 + [40.0, 60.0] + [2.0] * 20)  # spikes (a mean would trip)
    guard = DivergenceGuard(classes=10, steps_per_epoch=20)
    verdicts = [guard.verdict(v) for v in [3.0, 6.0, 9.0, 8.0, 12.0, 9.5, 10.0, 11.0, 9.0, 8.5]]
    assert verdicts[:-1] == [None] * 9 and "median loss of the last 10 steps is 9.00, 3.9x chance" in verdicts[-1][0]
    assert DivergenceGuard(classes=2, steps_per_epoch=4).verdict(float("nan"))[0] == "the loss is nan"


def test_condensenet74_converges_in_its_first_epoch_with_the_defaults(tmp_path):
    """Fails with the CIFAR rate (lr 0.1, no warm-up): the first-epoch loss was 9-13, far above chance."""
    cfg = TrainConfig(model="condensenet-74-c8", input_size=64, epochs=2, out_dir=str(tmp_path / "run"))
    result = train(cfg, progress=False)
    first, second = result.history
    assert first["loss"] < 2 * math.log(10), result.history  # measured 2.70 (lr 0.05, classifier at half)
    assert second["loss"] < math.log(10), result.history  # learning, not at chance (measured 1.81)
    assert result.heldout_top1 > 20.0 and not result.warnings, result.history  # not one class (measured 28.4%)
    recipe = torch.load(result.checkpoint, weights_only=True)["extra"]["recipe"]
    assert recipe == {"scale": "large", "classifier_lr_scale": pytest.approx(1024 / 2064), "crop_area": None}


def test_a_diverging_run_exits_2_naming_the_step_the_loss_and_the_fix(tmp_path):
    out = tmp_path / "run"
    # 3x the rate that used to be the default, no warm-up: its classifier (at half the rate, 0.15)
    # blows up within steps (median loss 15, 6.5x chance, measured).
    r = subprocess.run([sys.executable, "-m", "edgecn", "train", "--model", "condensenet-74-c8", "--input-size", "32",
                        "--lr", "0.3", "--warmup-epochs", "0", "--epochs", "3", "--out", str(out), "--quiet"], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert r.returncode == 2, (r.stdout[-2000:], r.stderr[-2000:])
    assert "training diverged at epoch 1, step" in r.stderr, r.stderr[-2000:]
    assert "--lr 0.3 -> 0.05, this model's default at batch 32" in r.stderr and "--warmup-epochs 0 -> 1" in r.stderr
    assert "nothing was saved" in r.stderr
    assert not (out / "final.pt").exists() and not (out / "last.pt").exists()


def test_divergence_after_the_first_epoch_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """Weights blown up at the start of epoch 2: the run stops there, last.pt still holds epoch 1."""
    from edgecn.train import loop

    real = loop.set_progress
    steps = {}

    def blow_up_at_epoch_2(model, progress):
        it = round(progress * steps.setdefault("total", 2 * 22))
        if it == 22 and not steps.get("done"):
            with torch.no_grad():
                model.classifier.linear.weight.mul_(1e4)
            steps["done"] = True
        return real(model, progress)

    monkeypatch.setattr(loop, "set_progress", blow_up_at_epoch_2)
    cfg = TrainConfig(model="condensenet-light", epochs=2, out_dir=str(tmp_path / "run"))
    with pytest.raises(TrainingDiverged, match="epoch 2, step") as e:
        train(cfg, progress=False)
    assert "last.pt still holds epoch 1" in str(e.value) and e.value.loss > 2 * math.log(10)
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert saved["extra"]["epoch"] == 1
    assert float(saved["state_dict"]["classifier.linear.weight"].abs().max()) < 100
    assert not (tmp_path / "run" / "final.pt").exists()
