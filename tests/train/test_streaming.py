"""Streamed image folders: memory that does not grow with the data, reproducible with workers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgecn.errors import EdgecnError
from edgecn.train.data import load_dataset
from edgecn.train.files import ImageFiles, SeededIndices, crop_box, item_seed
from killing import kill_after_first_epoch

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--model", "condensenet-light", "--set", "bottleneck=2", "--batch-size", "64", "--quiet"]

# Trains one epoch in a fresh process and reports its peak resident memory (VmHWM: the high-water
# mark of this process's own memory; ru_maxrss would carry over pytest's, inherited at fork) and
# the largest resident size any loader worker reached (sampled every 20 ms).
PEAK = r'''
import json, os, sys, threading, time
from edgecn.train import TrainConfig, train

def status(pid, key):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0

def children():
    for task in os.listdir("/proc/self/task"):
        try:
            yield from open(f"/proc/self/task/{task}/children").read().split()
        except OSError:
            pass

workers = [0.0]
def watch():
    while True:
        for pid in list(children()):
            workers[0] = max(workers[0], status(pid, "VmRSS"))
        time.sleep(0.02)

threading.Thread(target=watch, daemon=True).start()
folder, out, size, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
result = train(TrainConfig(model="condensenet-light", data=folder, input_size=size, epochs=1, batch_size=64,
                           out_dir=out, overrides={"bottleneck": 2}, workers=2, max_in_memory_mb=limit),
               progress=False)
print(json.dumps({"self_mb": status("self", "VmHWM"), "children_mb": workers[0], "history": result.history}))
'''


def write_folder(root, classes=("a", "b", "c"), per_class=10, side=64, seed=0):
    """An ImageFolder tree of PNGs: a class-coloured square on noise, so the classes are learnable."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 96, (side, side, 3), dtype=np.uint8)
            a[side // 4: 3 * side // 4, side // 4: 3 * side // 4, c % 3] = 255
            Image.fromarray(a).save(root / name / f"{i:05d}.png")
    return root


def _peak(folder, out, size, limit_mb) -> dict:
    # A fixed mmap threshold makes glibc return every large buffer when it is freed. With its default
    # (a threshold that rises as buffers are freed) the heap's high-water mark after one epoch grows
    # with the number of steps taken (measured: 1,345 MB after 1,200 images, 1,481 MB after 3,600,
    # then level), which says nothing about the data; with it both sizes peaked at 791-792 MB.
    env = {**ENV, "MALLOC_MMAP_THRESHOLD_": "65536"}
    r = subprocess.run([sys.executable, "-c", PEAK, str(folder), str(out), str(size), str(limit_mb)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_large_folders_stream_and_small_ones_stay_in_memory(tmp_path):
    root = write_folder(tmp_path / "f", per_class=4, side=20)
    held = load_dataset(str(root), input_size=16)
    assert not held.streamed and isinstance(held.train, torch.utils.data.TensorDataset)
    streamed = load_dataset(str(root), input_size=16, max_in_memory_mb=0)
    assert streamed.streamed and isinstance(streamed.train, ImageFiles)
    # Same files, same split, same labels; normalisation from the (here: complete) sample.
    assert held.labels == streamed.labels
    assert sorted(held.train.tensors[1].tolist()) == sorted(streamed.train.targets.tolist())
    assert np.allclose(held.normalize["mean"], streamed.normalize["mean"], atol=1e-4)
    assert np.allclose(held.normalize["std"], streamed.normalize["std"], rtol=1e-2)
    # Unaugmented items are the in-memory pixels exactly (before each set's own normalisation).
    def pixels(ds):
        mean, std = (torch.tensor(ds.normalize[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
        return ds.heldout.tensors[0] * std + mean

    assert torch.allclose(pixels(streamed), pixels(held), atol=1e-5)


def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    # Both sets hold out more than one evaluation batch (256), so the only difference is their size.
    small = write_folder(tmp_path / "small", per_class=220, side=40)
    large = write_folder(tmp_path / "large", per_class=1500, side=40, seed=1)
    size = 32
    extra_mb = (4500 - 660) * 3 * size * size * 4 / 2**20  # what holding the larger set in memory adds: 45 MB
    s = _peak(small, tmp_path / "s", size, 0)
    big = _peak(large, tmp_path / "l", size, 0)
    assert big["history"][0]["images_per_s"] > 0
    assert s["children_mb"] > 0 and big["children_mb"] > 0, "no loader worker was seen"
    for key in ("self_mb", "children_mb"):
        assert big[key] - s[key] < 0.25 * extra_mb, (key, s, big)
    # The contrast that makes the check mean something: held in memory, the same data grows.
    held = _peak(large, tmp_path / "h", size, 10_000)
    print({name: (round(r["self_mb"]), round(r["children_mb"])) for name, r in
           (("660 streamed", s), ("4,500 streamed", big), ("4,500 in memory", held))})
    assert held["self_mb"] - big["self_mb"] > 0.75 * extra_mb, (held, big)


def _weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _train(*args):
    return subprocess.run([sys.executable, "-m", "edgecn", "train", *TINY, *args], capture_output=True, text=True,
                          env=ENV, timeout=600)


def test_workers_do_not_change_results_and_resume_after_kill_is_bit_identical(tmp_path):
    root = write_folder(tmp_path / "f", per_class=120, side=24)
    args = ["--data", str(root), "--input-size", "16", "--epochs", "3", "--max-in-memory-mb", "0", "--seed", "4"]
    for name, workers in (("w0", "0"), ("w2", "2")):
        r = _train(*args, "--workers", workers, "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr[-3000:]
    a, b = _weights(tmp_path / "w0" / "final.pt"), _weights(tmp_path / "w2" / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(tmp_path / "w2" / "final.pt", weights_only=True)["extra"]["streamed"] is True

    out = tmp_path / "killed"
    kill_after_first_epoch([*TINY, *args, "--workers", "2", "--out", str(out)], out, ENV)
    r = _train(*args, "--workers", "2", "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    c = _weights(out / "final.pt")
    assert all(torch.equal(b[k], c[k]) for k in b)


def test_an_unreadable_image_found_by_a_worker_is_a_user_error(tmp_path, capsys):
    from edgecn.cli import main

    root = write_folder(tmp_path / "f", per_class=30, side=16)
    (root / "b" / "00003.png").write_bytes(b"\x89PNG but not really")
    code = main(["train", *TINY, "--data", str(root), "--input-size", "16", "--epochs", "1", "--workers", "2",
                 "--max-in-memory-mb", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "00003.png" in err and "cannot be read" in err and "Traceback" not in err
    # The same when the image turns up mid-epoch, in a worker, rather than in the statistics sample.
    from edgecn.train.files import user_errors

    files = sorted(str(p) for p in root.rglob("*.png"))
    loader = torch.utils.data.DataLoader(ImageFiles(files, [0] * len(files), 16), batch_size=8, num_workers=2)
    with pytest.raises(EdgecnError, match=r"00003\.png.*cannot be read"):
        list(user_errors(loader))


def test_random_resized_crops_stay_inside_and_repeat_by_seed():
    import random

    for w, h in ((64, 64), (300, 40), (17, 90)):
        for s in range(200):
            left, top, right, bottom = crop_box((w, h), random.Random(s))
            assert 0 <= left < right <= w and 0 <= top < bottom <= h
        assert crop_box((w, h), random.Random(7)) == crop_box((w, h), random.Random(7))
    assert item_seed(1, 2, 3) != item_seed(1, 3, 2) != item_seed(2, 2, 3)


def test_seeded_indices_follow_the_inner_sampler():
    inner = torch.utils.data.DistributedSampler(range(10), num_replicas=1, rank=0, seed=3)
    sampler = SeededIndices(inner, seed=3)
    sampler.set_epoch(2)
    keys = list(sampler)
    assert [i for i, _ in keys] == list(inner) and len(sampler) == 10
    assert all(seed == item_seed(3, 2, i) for i, seed in keys)


@pytest.mark.parametrize("augmentation", ["shift-flip", "random-resized-crop"])
def test_augmented_items_depend_only_on_their_key(tmp_path, augmentation):
    root = write_folder(tmp_path / "f", per_class=2, side=40)
    files = sorted(str(p) for p in root.rglob("*.png"))
    ds = ImageFiles(files, [0] * len(files), 32, augmentation=augmentation)
    x1, _ = ds[(1, 99)]
    x2, _ = ds[(1, 99)]
    assert x1.shape == (3, 32, 32) and torch.equal(x1, x2)
    assert not all(torch.equal(x1, ds[(1, s)][0]) for s in range(5))


def test_streamed_folder_without_images_held_out_is_refused(tmp_path):
    write_folder(tmp_path / "d" / "train", per_class=3, side=8)
    (tmp_path / "d" / "val").mkdir()
    with pytest.raises(EdgecnError, match="has no images"):
        load_dataset(str(tmp_path / "d"), input_size=8, max_in_memory_mb=0)


def test_calibration_from_a_streamed_set_decodes_only_what_it_draws(tmp_path, monkeypatch):
    from edgecn.quantize.calibration import from_dataset, load_recipe

    root = write_folder(tmp_path / "f", per_class=40, side=16)
    ds = load_dataset(str(root), input_size=16, max_in_memory_mb=0)
    opened = []
    real = ImageFiles.__getitem__
    monkeypatch.setattr(ImageFiles, "__getitem__", lambda self, key: opened.append(key) or real(self, key))
    x = from_dataset(ds.train, load_recipe("default"), size=20)
    assert x.shape == (20, 3, 16, 16) and len(opened) == 20
