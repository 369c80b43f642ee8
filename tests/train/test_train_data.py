"""Data sources: the embedded digits, CIFAR python folders (read safely), ImageFolder trees."""

import os
import pickle

import numpy as np
import pytest
import torch

from edgecn.errors import EdgecnError
from edgecn.train.data import load_dataset


def test_digits_split_is_fixed_stratified_and_normalised():
    a = load_dataset("digits", input_size=16)
    b = load_dataset("digits", input_size=16)
    x, y = a.train.tensors
    hx, hy = a.heldout.tensors
    assert x.shape == (len(y), 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(y) + len(hy) == 1797 and abs(len(hy) / 1797 - 0.2) < 0.01
    assert torch.equal(hx, b.heldout.tensors[0]) and torch.equal(hy, b.heldout.tensors[1])
    counts = np.bincount(hy.numpy(), minlength=10)
    totals = counts + np.bincount(y.numpy(), minlength=10)
    assert np.all(np.abs(counts / totals - 0.2) < 0.02)  # every class held out at ~20%
    assert a.labels == [str(i) for i in range(10)] and a.name == "digits" and a.input_size == 16
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    assert len(a.normalize["mean"]) == 3 and len(a.normalize["std"]) == 3
    # The held-out split is the same images whatever the input size.
    assert torch.equal(load_dataset("digits", input_size=8).heldout.tensors[1], hy)


def _write_cifar10(root, n_train=6, n_test=4, protocol=2):
    rng = np.random.default_rng(0)
    root.mkdir()
    for name, n in [(f"data_batch_{i}", n_train) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n)], b"batch_label": name.encode()}
        (root / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=protocol))
    return root


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_folder(tmp_path, protocol):
    root = _write_cifar10(tmp_path / "cifar-10-batches-py", protocol=protocol)
    ds = load_dataset(str(root), input_size=16)
    assert ds.labels[0] == "airplane" and len(ds.labels) == 10
    assert ds.train.tensors[0].shape == (30, 3, 16, 16) and ds.heldout.tensors[0].shape == (4, 3, 16, 16)
    raw = pickle.loads((root / "test_batch").read_bytes())
    assert ds.heldout.tensors[1].tolist() == raw[b"labels"]
    # Pixels go through unchanged at the native size: undo the normalisation and compare.
    native = load_dataset(str(root), input_size=32)
    mean, std = (torch.tensor(native.normalize[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    pixels = native.heldout.tensors[0] * std + mean
    assert torch.allclose(pixels, torch.from_numpy(raw[b"data"].reshape(-1, 3, 32, 32) / 255.0).float(), atol=1e-5)


def test_cifar100_folder_uses_fine_labels(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 8), ("test", 3)):
        d = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": list(range(n)),
             "coarse_labels": [0] * n}
        (root / name).write_bytes(pickle.dumps(d))
    (root / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)],
                                              "coarse_label_names": [f"s{i}" for i in range(20)]}))
    ds = load_dataset(str(root), input_size=32)
    assert len(ds.labels) == 100 and ds.heldout.tensors[1].tolist() == [0, 1, 2]


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_cifar_pickle_is_refused_without_running(tmp_path):
    root = _write_cifar10(tmp_path / "cifar")
    victim = tmp_path / "pwned.txt"
    (root / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(str(victim)), b"labels": []}))
    # Sanity: plain pickle would have created the file (the payload is real).
    pickle.loads((root / "test_batch").read_bytes())[b"data"].close()
    assert victim.exists()
    victim.unlink()
    with pytest.raises(EdgecnError, match=r"asks to run io\.open"):
        load_dataset(str(root), input_size=32)
    assert not victim.exists()


def test_cifar_folder_with_missing_or_garbage_files(tmp_path):
    root = _write_cifar10(tmp_path / "cifar")
    (root / "data_batch_3").unlink()
    with pytest.raises(EdgecnError, match="data_batch_3"):
        load_dataset(str(root))
    (root / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(EdgecnError, match="data_batch_3"):
        load_dataset(str(root))


def _write_images(root, classes, per_class, size=(10, 12)):
    from PIL import Image

    rng = np.random.default_rng(2)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")


def test_image_folder_with_fixed_split(tmp_path):
    _write_images(tmp_path / "pets", ["cat", "dog", "eel"], 5)
    ds = load_dataset(str(tmp_path / "pets"), input_size=8)
    assert ds.labels == ["cat", "dog", "eel"]
    assert ds.train.tensors[0].shape == (12, 3, 8, 8)
    assert sorted(ds.heldout.tensors[1].tolist()) == [0, 1, 2]
    again = load_dataset(str(tmp_path / "pets"), input_size=8)
    assert torch.equal(ds.heldout.tensors[0], again.heldout.tensors[0])


def test_image_folder_with_train_and_val(tmp_path):
    _write_images(tmp_path / "d" / "train", ["a", "b"], 3)
    _write_images(tmp_path / "d" / "val", ["a", "b"], 2)
    ds = load_dataset(str(tmp_path / "d"), input_size=8)
    assert len(ds.train.tensors[1]) == 6 and ds.heldout.tensors[1].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("case,match", [
    ("missing", "neither the embedded"),
    ("file", "is a file"),
    ("empty", "no class subfolders"),
    ("one_class", "only 'a'"),
    ("bad_image", "cannot be read"),
    ("empty_class", "has no images"),
    ("train_only", "no val/ or test/"),
])
def test_bad_folders_are_user_errors(tmp_path, case, match):
    root = tmp_path / "data"
    if case == "file":
        root.write_text("x")
    elif case == "empty":
        root.mkdir()
    elif case == "one_class":
        _write_images(root, ["a"], 2)
    elif case == "bad_image":
        _write_images(root, ["a", "b"], 2)
        (root / "b" / "broken.png").write_bytes(b"\x89PNG garbage")
    elif case == "empty_class":
        _write_images(root, ["a"], 2)
        (root / "b").mkdir()
    elif case == "train_only":
        _write_images(root / "train", ["a", "b"], 2)
    with pytest.raises(EdgecnError, match=match):
        load_dataset(str(root), input_size=8)
