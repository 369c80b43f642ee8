"""Bad inputs through the real CLI: exit 2, one line that names the fix, no traceback, nothing damaged.

Each entry of ``CASES`` is one thing a user can get wrong. It runs ``python -m edgecn`` in a
fresh folder holding copies of good files plus whatever the entry damages or adds; every file
in that folder is hashed before and after, so a half-written or clobbered file fails the case.
Cases run two at a time (CI has two cores) and are then checked one test each.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest

from robust_helpers import (COUNTS, can_mount, edgecn, file_size_limit, flipped, garbage, leftovers, small_filesystem,
                            tree_hashes, truncated)

B = "build/condensenet-light-robust"
ONNX, TFLITE, PTE = (f"{B}/condensenet-light-fp32.{s}" for s in ("onnx", "tflite", "pte"))
TRAIN = ("train", "--input-size", "8", "--epochs", "1", "--batch-size", "64", "--quiet")
BUILD = ("build", "--target", "onnxonly.toml", "--checkpoint", "light.pt", "--out", "out", "--quiet")
BUILD8 = ("build", "--target", "onnxint8.toml", "--checkpoint", "light.pt", "--out", "out", "--quiet")


@dataclasses.dataclass(frozen=True)
class Bad:
    """One bad input.

    Attributes:
        id: short name, shown as the test id.
        args: the command line after ``edgecn`` (run in the working folder).
        match: regex the error line must contain (what is wrong).
        setup: writes the damaged or extra files into the working folder.
        disk: ``"full"`` mounts a 64 KiB tmpfs at ``disk/`` (or limits file size when mounting
            is not allowed), ``"ro"`` mounts a read-only one there.
        usage: an argparse error (a usage line instead of "Fix:").
    """

    id: str
    args: tuple[str, ...]
    match: str
    setup: Callable[[Path], None] | None = None
    disk: str | None = None
    usage: bool = False


# -- setups ------------------------------------------------------------------------------------
def put(name: str, data: bytes | str | Callable[[Path], bytes]):
    def setup(w: Path):
        p = w / name
        p.parent.mkdir(parents=True, exist_ok=True)
        value = data(w) if callable(data) else data
        p.write_bytes(value.encode() if isinstance(value, str) else value)
    return setup


def of(src: str, transform=lambda b: b):
    return lambda w: transform((w / src).read_bytes())


def steps(*setups):
    def setup(w: Path):
        for s in setups:
            s(w)
    return setup


def png(color: int = 128) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (color, 255 - color, color // 2)).save(buf, format="PNG")
    return buf.getvalue()


def image_folder(root: str, classes=("a", "b"), per_class: int = 2, broken: str | None = None):
    setups = [put(f"{root}/{c}/{i}.png", lambda w, i=i: png(40 * i)) for c in classes for i in range(per_class)]
    if broken:
        setups.append(put(f"{root}/{broken}", garbage(300, 7)))
    return steps(*setups)


def edited_checkpoint(name: str, edit: Callable[[dict], None]):
    def data(w: Path) -> bytes:
        import torch

        payload = torch.load(w / "light.pt", weights_only=True)
        edit(payload)
        buf = io.BytesIO()
        torch.save(payload, buf)
        return buf.getvalue()
    return put(name, data)


def _shrink_first_conv(payload: dict) -> None:
    key = next(k for k, v in payload["state_dict"].items() if k.endswith("weight") and v.dim() == 4)
    payload["state_dict"][key] = payload["state_dict"][key][:1]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def cifar_with_payload(root: str):
    pickled = pickle.dumps({b"data": _Payload(), b"labels": [0]}, protocol=2)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return steps(*[put(f"{root}/{n}", pickled) for n in names])


def retarget(**fields) -> Callable[[Path], bytes]:
    def data(w: Path) -> bytes:
        text = (w / "onnxonly.toml").read_text()
        for key, value in fields.items():
            text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M) if value is not None else \
                re.sub(rf"^{key} = .*\n", "", text, flags=re.M)
        return text.replace('name = "onnxonly"', 'name = "t"').encode()
    return data


def npy(shape) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, dtype=np.float32))
    return buf.getvalue()


FIX = "Fix: "
CASES: list[Bad] = [
    # train: options, data, resume state, output location
    Bad("train-unknown-model", (*TRAIN, "--model", "condensenet-lite"), "unknown model.*condensenet-lite"),
    Bad("train-zero-epochs", (*TRAIN, "--epochs", "0"), "--epochs: '0' is not an integer from 1", usage=True),
    Bad("train-batch-of-one", (*TRAIN, "--batch-size", "1"), "batch size must be"),
    Bad("train-input-too-small", (*TRAIN, "--input-size", "4"), "--input-size: '4' is not an integer from 8", usage=True),
    Bad("train-negative-lr", (*TRAIN, "--lr", "-1"), "--lr: '-1' is not a finite number above 0", usage=True),
    Bad("train-set-not-key-value", (*TRAIN, "--set", "groups"), "is not KEY=VALUE"),
    Bad("train-set-unknown-option", (*TRAIN, "--set", "bogus=3"), "bogus"),
    Bad("train-data-missing", (*TRAIN, "--data", "nowhere"), "neither the embedded"),
    Bad("train-data-is-a-file", (*TRAIN, "--data", "light.pt"), "is a file"),
    Bad("train-data-empty-folder", (*TRAIN, "--data", "empty"), "no class subfolders", lambda w: (w / "empty").mkdir()),
    Bad("train-data-one-class", (*TRAIN, "--data", "imgs"), "only 'a'", image_folder("imgs", classes=("a",))),
    Bad("train-data-broken-image", (*TRAIN, "--data", "imgs"), "image .*x.png.* cannot be read", image_folder("imgs", broken="b/x.png")),
    Bad("train-data-cifar-pickle-payload", (*TRAIN, "--data", "cifar"), "refusing", cifar_with_payload("cifar")),
    Bad("train-resume-nothing", (*TRAIN, "--out", "run", "--resume"), "nothing to resume"),
    Bad("train-out-holds-a-run", (*TRAIN, "--out", "run"), "already holds a run", put("run/last.pt", of("light.pt"))),
    Bad("train-resume-truncated", (*TRAIN, "--out", "run", "--resume"), "truncated or corrupt",
        put("run/last.pt", of("light.pt", truncated))),
    Bad("train-resume-tflite-as-state", (*TRAIN, "--out", "run", "--resume"), "truncated or corrupt|not an edgecn",
        put("run/last.pt", of(TFLITE))),
    Bad("train-resume-not-a-train-state", (*TRAIN, "--out", "run", "--resume"), "not a training state",
        put("run/last.pt", of("light.pt"))),
    Bad("train-out-under-a-file", (*TRAIN, "--out", "light.pt/run"), "cannot create folder|not writable|Not a directory"),
    Bad("train-out-read-only", (*TRAIN, "--out", "disk/run"), "could not write|not writable|Read-only", disk="ro"),
    Bad("train-out-full-disk", (*TRAIN, "--out", "disk/run"), "could not write", disk="full"),
    # condense: every kind of bad checkpoint, and bad outputs
    Bad("condense-missing", ("condense", "nope.pt"), "does not exist"),
    Bad("condense-empty", ("condense", "e.pt"), "is empty", put("e.pt", b"")),
    Bad("condense-truncated", ("condense", "t.pt"), "truncated or corrupt", put("t.pt", of("light.pt", truncated))),
    Bad("condense-flipped-bytes", ("condense", "f.pt"), "truncated or corrupt|not an edgecn|does not fit",
        put("f.pt", of("light.pt", lambda b: flipped(b, 1)))),
    Bad("condense-random-bytes", ("condense", "r.pt"), "not an edgecn", put("r.pt", garbage(5000, 2))),
    Bad("condense-tflite-as-checkpoint", ("condense", TFLITE), "truncated or corrupt|not an edgecn"),
    Bad("condense-target-as-checkpoint", ("condense", "robust.toml"), "truncated or corrupt|not an edgecn"),
    Bad("condense-compressed-as-checkpoint", ("condense", "light.edc"), "truncated or corrupt|not an edgecn"),
    Bad("condense-folder", ("condense", B), "is a folder"),
    Bad("condense-wrong-shapes", ("condense", "s.pt"), "does not fit the model",
        edited_checkpoint("s.pt", _shrink_first_conv)),
    Bad("condense-unknown-model", ("condense", "u.pt"), "unknown model|resnet-9000",
        edited_checkpoint("u.pt", lambda p: p["config"].update(name="resnet-9000"))),
    Bad("condense-five-classes-on-digits", ("condense", "five.pt", "--data", "digits"), "5 classes but data"),
    Bad("condense-onto-itself", ("condense", "light.pt", "-o", "light.pt"), "overwrite the input"),
    Bad("condense-model-too-small-for-input", ("condense", "squeeze.pt", "--data", "digits"), "cannot run at its input size"),
    Bad("train-model-too-small-for-input", ("train", "--model", "squeezenet1_1", "--input-size", "16", "--epochs", "1", "--out", "sq"),
        "cannot run at input size"),
    Bad("condense-out-under-a-file", ("condense", "light.pt", "-o", "five.pt/c.pt"), "cannot create folder|not writable"),
    Bad("condense-out-full-disk", ("condense", "light.pt", "-o", "disk/c.pt"), "could not write", disk="full"),
    # build: targets, checkpoints, calibration, options, outputs
    Bad("build-unknown-target", ("build", "--target", "jetsn", "--checkpoint", "light.pt"), "unknown target"),
    Bad("build-target-file-missing", ("build", "--target", "no.toml", "--checkpoint", "light.pt"), "does not exist"),
    Bad("build-target-file-empty", ("build", "--target", "t.toml", "--checkpoint", "light.pt"), "missing field",
        put("t.toml", b"")),
    Bad("build-target-file-truncated", ("build", "--target", "t.toml", "--checkpoint", "light.pt"), "not valid TOML",
        put("t.toml", of("robust.toml", lambda b: b[: b.index(b"backends") + 14]))),
    Bad("build-checkpoint-as-target", ("build", "--target", "t.toml", "--checkpoint", "light.pt"),
        "cannot be read|not valid TOML|not UTF-8|such a file can be", put("t.toml", of("light.pt"))),
    Bad("build-target-unknown-backend", ("build", "--target", "t.toml", "--checkpoint", "light.pt"), "unknown backend 'coreml'",
        put("t.toml", retarget(backends='["coreml"]'))),
    Bad("build-target-unknown-precision", ("build", "--target", "t.toml", "--checkpoint", "light.pt"),
        "unknown precision 'fp8'", put("t.toml", retarget(precisions='["fp8"]'))),
    Bad("build-target-missing-field", ("build", "--target", "t.toml", "--checkpoint", "light.pt"), "missing field 'arch'",
        put("t.toml", retarget(arch=None))),
    Bad("build-target-wrong-type", ("build", "--target", "t.toml", "--checkpoint", "light.pt"), "'threads' must be a int",
        put("t.toml", retarget(cpu='"host"\nthreads = "four"'))),
    Bad("build-checkpoint-missing", (*BUILD[:3], "--checkpoint", "nope.pt"), "does not exist"),
    Bad("build-onnx-as-checkpoint", (*BUILD[:3], "--checkpoint", ONNX), "truncated or corrupt|not an edgecn"),
    Bad("build-compressed-as-checkpoint", (*BUILD[:3], "--checkpoint", "light.edc"), "truncated or corrupt|not an edgecn"),
    Bad("build-wrong-class-count", (*BUILD[:3], "--checkpoint", "five.pt"), "5 classes but data"),
    Bad("build-max-drop-out-of-range", (*BUILD, "--max-drop", "500"), "--max-drop: '500' is not", usage=True),
    Bad("build-calibration-size-zero", (*BUILD8, "--calibration-size", "0"), "--calibration-size: '0' is not", usage=True),
    Bad("build-calibration-method-unknown", (*BUILD8, "--calibration-method", "magic"), "invalid choice", usage=True),
    Bad("build-unknown-precision", (*BUILD, "--precision", "fp8"), "unknown precision 'fp8'"),
    Bad("build-calibration-images-missing", (*BUILD8, "--calibration-images", "nope"), "does not exist"),
    Bad("build-calibration-images-empty", (*BUILD8, "--calibration-images", "cal"), "0 image",
        lambda w: (w / "cal").mkdir()),
    Bad("build-calibration-image-broken", (*BUILD8, "--calibration-images", "cal"), "cannot be read",
        image_folder("cal", broken="a/x.png")),
    Bad("build-calibration-recipe-unknown", (*BUILD8, "--calibration", "nope"), "nope"),
    Bad("build-calibration-recipe-broken", (*BUILD8, "--calibration", "r.toml"), "r.toml",
        put("r.toml", b"method = \"minmax\"\nsize = [")),
    Bad("build-data-missing", (*BUILD, "--data", "nowhere"), "neither the embedded"),
    Bad("build-out-under-a-file", (*BUILD[:5], "--out", "light.pt/o"), "cannot create folder|not writable"),
    Bad("build-out-read-only", (*BUILD[:5], "--out", "disk"), "could not write|not writable|Read-only", disk="ro"),
    Bad("build-out-full-disk", (*BUILD[:5], "--out", "disk"), "could not write|No space|too large", disk="full"),
    # profile: damaged artifacts and manifests, wrong kinds, bad options
    Bad("profile-missing", ("profile", "nope.onnx"), "does not exist"),
    Bad("profile-empty-tflite", ("profile", "e.tflite"), "is empty", put("e.tflite", b"")),
    Bad("profile-truncated-tflite", ("profile", "t.tflite"), "not a valid .tflite", put("t.tflite", of(TFLITE, truncated))),
    Bad("profile-truncated-pte", ("profile", "t.pte"), "not a valid .pte", put("t.pte", of(PTE, truncated))),
    Bad("profile-truncated-onnx", ("profile", "t.onnx"), "not a valid .onnx", put("t.onnx", of(ONNX, truncated))),
    Bad("profile-random-pte", ("profile", "r.pte"), "not a valid .pte", put("r.pte", garbage(4096, 3))),
    Bad("profile-flipped-tflite-header", ("profile", "f.tflite"), "not a valid .tflite",
        put("f.tflite", of(TFLITE, lambda b: garbage(8, 4) + b[8:]))),
    Bad("profile-checkpoint-as-tflite", ("profile", "c.tflite"), "not a valid .tflite", put("c.tflite", of("light.pt"))),
    Bad("profile-onnx-as-pte", ("profile", "o.pte"), "not a valid .pte", put("o.pte", of(ONNX))),
    Bad("profile-unknown-suffix", ("profile", "light.pt"), r"\.pt"),
    Bad("profile-manifest-truncated", ("profile", ONNX), "not valid JSON",
        put(f"{B}/manifest.json", of(f"{B}/manifest.json", truncated))),
    Bad("profile-manifest-wrong-schema", ("profile", ONNX), "field 'artifacts'",
        put(f"{B}/manifest.json", b'{"format": "edgecn-manifest", "version": 1, "artifacts": {}}')),
    Bad("profile-artifact-tampered", ("profile", ONNX), "differs from the manifest",
        put(ONNX, of(ONNX, lambda b: flipped(b, 5, 1)))),
    Bad("profile-zero-threads", ("profile", ONNX, "--threads", "0"), "--threads: '0' is not a comma list", usage=True),
    Bad("profile-threads-not-numbers", ("profile", ONNX, "--threads", "two"), "--threads: 'two' is not a comma list", usage=True),
    Bad("profile-data-missing", ("profile", ONNX, "--data", "nowhere", "--runs", "2"), "nowhere"),
    Bad("profile-data-broken-image", ("profile", ONNX, "--data", "imgs", "--runs", "2"), "x.png.* cannot be read",
        image_folder("imgs", broken="b/x.png")),
    Bad("profile-data-wrong-shape", ("profile", ONNX, "--data", "arr", "--runs", "2"), "shape|size",
        put("arr/a.npy", npy((5, 7, 2, 2)))),
    Bad("profile-data-corrupt-npy", ("profile", ONNX, "--data", "arr", "--runs", "2"), "a.npy",
        put("arr/a.npy", of("light.pt", lambda b: b[:200]))),
    Bad("profile-zero-runs", ("profile", ONNX, "--runs", "0"), "--runs: '0' is not", usage=True),
    Bad("profile-negative-fps", ("profile", ONNX, "--fps", "-5"), "--fps: '-5' is not", usage=True),
    Bad("profile-negative-warmup", ("profile", ONNX, "--warmup", "-1"), "--warmup: '-1' is not", usage=True),
    Bad("profile-plot-under-a-file", ("profile", ONNX, "--runs", "2", "--plot", "light.pt/p.png"),
        "cannot create folder|not writable|could not write"),
]


@dataclasses.dataclass
class Outcome:
    proc: object
    before: dict
    after: dict
    leftovers: list
    disk: str | None
    ran_payload: bool = False
    skipped: str | None = None


def run_case(case: Bad, goods: Path, root: Path, mount_ok: bool) -> Outcome:
    w = root / case.id
    w.mkdir(parents=True)
    for name in ("light.pt", "five.pt", "squeeze.pt", "robust.toml", "onnxonly.toml", "onnxint8.toml", "light.edc"):
        shutil.copy(goods / name, w / name)
    shutil.copytree(goods / "build", w / "build")
    if case.setup:
        case.setup(w)
    env = {"EDGECN_CACHE_DIR": str(w / ".cache")}
    before = tree_hashes(w)
    if case.disk == "ro" and not mount_ok:
        return Outcome(None, before, before, [], None, "mounting a read-only tmpfs is not permitted here")
    if case.disk and mount_ok:
        with small_filesystem(w / "disk", read_only=case.disk == "ro"):
            proc = edgecn(case.args, cwd=w, env=env)
        kind = "mount"
    else:
        limit = file_size_limit() if case.disk == "full" else None
        proc = edgecn(case.args, cwd=w, env=env, preexec=limit)
        kind = "rlimit" if limit else None
    after = {k: v for k, v in tree_hashes(w).items() if k in before}
    return Outcome(proc, before, after, leftovers(w), kind, (w / "pwned").exists())


@pytest.fixture(scope="module")
def outcomes(goods, tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("bad")
    mount_ok = can_mount()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {c.id: pool.submit(run_case, c, goods, root, mount_ok) for c in CASES}
        return {k: f.result() for k, f in futures.items()}


def test_the_table_is_large_and_unique():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.args[0] for c in CASES} >= {"train", "condense", "build", "profile"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Bad, outcomes):
    out = outcomes[case.id]
    if out.skipped:
        pytest.skip(out.skipped)
    COUNTS["bad_inputs"] += 1
    if out.disk == "mount" and case.disk == "full":
        COUNTS["full_disk_mount"] += 1
    elif out.disk == "rlimit":
        COUNTS["full_disk_rlimit"] += 1
    proc = out.proc
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert proc.returncode == 2, shown
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, shown
    line = errors[0]
    if case.usage:
        assert "usage:" in proc.stderr and re.search(case.match, line), shown
    else:
        assert line.startswith(f"edgecn {case.args[0]}: error: "), shown
        assert FIX in line and len(line.split(FIX, 1)[1].strip()) > 10, shown
        assert re.search(case.match, line.split(FIX, 1)[0]), f"expected /{case.match}/ in: {line}"
    assert out.after == out.before, "a file that existed before was changed"
    assert not out.leftovers, f"temporary files left behind: {out.leftovers}"
    assert not out.ran_payload, "a pickled payload ran"
