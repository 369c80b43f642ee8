"""Local folders: CIFAR-10/100 in their python layout, and ImageFolder trees."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from edgecn.errors import EdgecnError
from edgecn.train.data import HELDOUT_FRACTION, SPLIT_SEED, Dataset, build_dataset, resize, stratified_split
from edgecn.train.safe_pickle import safe_load

CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
CIFAR100_FILES = ["train", "test", "meta"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
LAYOUTS = ("a CIFAR-10 python folder (data_batch_1..5, test_batch, batches.meta), a CIFAR-100 python folder "
           "(train, test, meta), or an ImageFolder tree (one subfolder of images per class, optionally inside "
           "train/ and val/ or test/)")


def load_folder(path: Path, input_size: int, max_in_memory_bytes: int) -> Dataset:
    """Detect the layout of ``path`` and load it (ImageFolder trees too big for memory are streamed)."""
    names = {p.name for p in path.iterdir()}
    if names & set(CIFAR10_FILES):
        return _cifar(path, input_size, CIFAR10_FILES, ["data_batch_%d" % i for i in range(1, 6)], "test_batch",
                      "batches.meta", b"labels", b"label_names")
    if {"meta", "test"} <= names or ("train" in names and (path / "train").is_file()):
        return _cifar(path, input_size, CIFAR100_FILES, ["train"], "test", "meta", b"fine_labels", b"fine_label_names")
    return _image_folder(path, input_size, max_in_memory_bytes)


# -- CIFAR ----------------------------------------------------------------------------------
def _cifar(path, input_size, expected, train_files, test_file, meta_file, label_key, names_key) -> Dataset:
    missing = [f for f in expected if not (path / f).is_file()]
    if missing:
        raise EdgecnError(f"CIFAR folder {str(path)!r} lacks {', '.join(missing)}",
                          f"pass the complete extracted folder: {LAYOUTS}")
    meta = _read_pickle(path / meta_file)
    labels = [_text(n) for n in _field(meta, names_key, path / meta_file)]
    parts = [_cifar_batch(path / f, label_key) for f in train_files]
    x_train = torch.cat([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = _cifar_batch(path / test_file, label_key)
    for y, f in ((y_train, train_files[0]), (y_test, test_file)):
        if len(y) and (y.min() < 0 or y.max() >= len(labels)):
            raise EdgecnError(f"{str(path / f)!r} has labels outside the {len(labels)} names of {meta_file}",
                              "re-extract the CIFAR archive; the files do not belong together")
    if len(labels) < 2:
        raise EdgecnError(f"{str(path / meta_file)!r} names fewer than two classes", "re-extract the CIFAR archive")
    return build_dataset(str(path), resize(x_train, input_size), y_train, resize(x_test, input_size), y_test,
                         labels, input_size)


def _read_pickle(file: Path):
    try:
        from edgecn.limits import MiB, read_file

        return safe_load(read_file(file, "CIFAR file", 512 * MiB))
    except pickle.UnpicklingError as e:
        raise EdgecnError(f"refusing to read {str(file)!r}: {e}",
                          "use the original CIFAR python files (they hold only arrays, lists and strings)") from e


def _field(d, key: bytes, file: Path):
    if isinstance(d, dict):
        for k in (key, key.decode()):
            if k in d:
                return d[k]
    raise EdgecnError(f"{str(file)!r} has no {key.decode()!r} entry", f"pass an unmodified CIFAR folder: {LAYOUTS}")


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _cifar_batch(file: Path, label_key: bytes) -> tuple[torch.Tensor, np.ndarray]:
    d = _read_pickle(file)
    data = np.asarray(_field(d, b"data", file))
    raw_y = _field(d, label_key, file)
    if not isinstance(raw_y, (list, np.ndarray)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in np.asarray(raw_y, dtype=object).ravel()):
        raise EdgecnError(f"{str(file)!r}: its {label_key.decode()!r} are not a list of integers",
                          f"pass an unmodified CIFAR folder: {LAYOUTS}")
    y = np.asarray(raw_y, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(y):
        raise EdgecnError(f"{str(file)!r} does not hold CIFAR images (uint8 rows of 3x32x32 with one label each)",
                          f"pass an unmodified CIFAR folder: {LAYOUTS}")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0), y


# -- ImageFolder ----------------------------------------------------------------------------
def _image_folder(path: Path, input_size: int, max_in_memory_bytes: int) -> Dataset:
    split = [path / n for n in ("val", "test") if (path / n).is_dir()]
    if (path / "train").is_dir():
        if not split:
            raise EdgecnError(f"{str(path)!r} has a train/ folder but no val/ or test/ beside it",
                              "add val/ (same class subfolders) or put the class folders directly in the root")
        labels = _classes(path / "train")
        train_files, y_train = _list_images(path / "train", labels)
        held_files, y_held = _list_images(split[0], labels)
    else:
        labels = _classes(path)
        files, y = _list_images(path, labels)
        tr, he = stratified_split(y, HELDOUT_FRACTION, SPLIT_SEED)
        train_files, y_train = [files[i] for i in tr], y[tr]
        held_files, y_held = [files[i] for i in he], y[he]
    if decoded_bytes(len(train_files) + len(held_files), input_size) > max_in_memory_bytes:
        return _streamed(str(path), train_files, y_train, held_files, y_held, labels, input_size)
    return build_dataset(str(path), _decode(train_files, input_size), y_train, _decode(held_files, input_size),
                         y_held, labels, input_size)


def decoded_bytes(images: int, input_size: int) -> int:
    """Memory the decoded float32 tensors of ``images`` RGB images at ``input_size`` would take."""
    return images * 3 * input_size * input_size * 4


def _streamed(name, train_files, y_train, held_files, y_held, labels, input_size) -> Dataset:
    from edgecn.train.files import ImageFiles, channel_stats, default_workers

    if len(y_train) == 0 or len(y_held) == 0:
        raise EdgecnError(f"data {name!r} has too few images to hold some out for scoring "
                          f"({len(y_train)} to train on, {len(y_held)} held out)",
                          "give each class at least 2 images (5 or more for a meaningful held-out top-1)")
    train = ImageFiles(train_files, y_train, input_size)
    normalize = channel_stats(train, workers=default_workers())
    return Dataset(name=name, train=train.with_options(normalize=normalize),
                   heldout=ImageFiles(held_files, y_held, input_size, normalize=normalize), labels=list(labels),
                   normalize=normalize, input_size=int(input_size))


def _classes(root: Path) -> list[str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "no class subfolders"
        raise EdgecnError(f"{str(root)!r} has {found}; a classifier needs at least two classes",
                          f"pass {LAYOUTS}")
    return classes


def _list_images(root: Path, labels: list[str]) -> tuple[list[Path], np.ndarray]:
    """Every image file of every class folder under ``root`` (sorted), and its class index."""
    files, targets = [], []
    for c, name in enumerate(labels):
        folder = root / name
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        if not found:
            raise EdgecnError(f"class folder {str(folder)!r} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                              "put at least one image in every class folder, with the same classes in every split")
        files.extend(found)
        targets.extend([c] * len(found))
    return files, np.asarray(targets, dtype=np.int64)


def _decode(files: list[Path], input_size: int) -> torch.Tensor:
    from PIL import Image

    from edgecn.runner.images import open_image

    images = [np.asarray(open_image(f, "RGB").resize((input_size, input_size), Image.BILINEAR), dtype=np.uint8)
              for f in files]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
