"""The benchmark trains its reference model once, whatever runs side by side: a --build-only process
whose --only leaves the trained model out does not train it, and processes that need it take turns."""

import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def run_all(monkeypatch, tmp_path):
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # run_all imports its siblings (report, timing, variants)
    import run_all as mod

    monkeypatch.setattr(mod, "CACHE", tmp_path / "cache")
    yield mod
    for name in ("run_all", "report", "timing", "variants"):  # bench's top-level names leave with the test
        if name not in before:
            sys.modules.pop(name, None)


def test_a_build_process_trains_only_when_its_models_include_the_trained_one(run_all):
    assert not run_all.needs_trained(run_all.parse_args(["--build-only", "--only", "condensenet-74-c8"]))
    assert not run_all.needs_trained(run_all.parse_args(["--build-only", "--only", "squeezenet1_1,condensenet-74-c4"]))
    assert run_all.needs_trained(run_all.parse_args(["--build-only", "--only", "condensenet-74-c8,condensenet-86"]))
    assert run_all.needs_trained(run_all.parse_args(["--build-only"]))
    # a timed run scores the trained model's held-out top-1, whatever it times
    assert run_all.needs_trained(run_all.parse_args(["--cached-only", "--only", "condensenet-74-c8"]))


def test_processes_side_by_side_train_once(run_all, monkeypatch):
    import edgecn.train

    calls, inside, overlapped = [], [], []

    def fake_train(config, progress=True):  # stands in for edgecn.train.train: slow, then writes the checkpoint
        if inside:
            overlapped.append(True)
        inside.append(True)
        calls.append((config.model, config.epochs, config.input_size))
        time.sleep(0.3)
        out = Path(config.out_dir)
        out.mkdir(parents=True)
        (out / "final.pt").write_bytes(b"checkpoint")
        inside.pop()

    monkeypatch.setattr(edgecn.train, "train", fake_train)
    paths = []
    # flock locks belong to each open file, so threads contend exactly as processes do
    workers = [threading.Thread(target=lambda: paths.append(run_all.trained_checkpoint("condensenet-86", 6)))
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert calls == [("condensenet-86", 6, run_all.TRAINED_SIZE)] and not overlapped
    assert len(paths) == 3 and all(p.read_bytes() == b"checkpoint" for p in paths)
    assert all(p.parent.parent == run_all.CACHE for p in paths)
