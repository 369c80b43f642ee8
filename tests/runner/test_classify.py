"""The public predict API: one caller-side code path for every artifact of a build."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecn.errors import EdgecnError
from edgecn.runner import Classifier, classify
from edgecn.runner.classify import to_unit_float

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits():
    """The held-out digits as an app would hold them: HxW float images in [0, 1], and their labels."""
    from sklearn.datasets import load_digits

    from edgecn.splits import stratified_split

    d = load_digits()
    _, held = stratified_split(np.asarray(d.target))
    return (d.images[held] / 16.0).astype(np.float32), [int(t) for t in d.target[held]]


@pytest.fixture
def native(native_env, monkeypatch):
    """.pte files run in the native runner built for this session."""
    monkeypatch.setenv("EDGECN_CACHE_DIR", native_env["EDGECN_CACHE_DIR"])


def _int8(build: Path) -> dict[str, Path]:
    return {p.suffix: p for p in build.iterdir() if p.suffix in (".tflite", ".pte") and "int8" in p.name}


def test_int8_tflite_and_pte_answer_the_heldout_digits_alike_with_the_same_caller_code(rpi5_build, digits, native):
    images, labels = digits
    manifest = json.loads((rpi5_build / "manifest.json").read_text())
    built = {Path(a["path"]).name: a for a in manifest["artifacts"]}
    arts = _int8(rpi5_build)
    assert set(arts) == {".tflite", ".pte"}
    answers = {}
    for suffix, path in arts.items():
        with Classifier(path, threads=1) as model:  # the same lines for both formats
            assert model.verified and model.precision == "int8"
            answers[suffix] = [model.predict(img) for img in images]
        top1 = 100.0 * np.mean([p.index == y for p, y in zip(answers[suffix], labels)])
        assert top1 == pytest.approx(built[path.name]["top1"], abs=0.01), suffix  # what the build measured (3 decimals)
    # the two int8 ends differ (int8 NHWC for .tflite, float NCHW for .pte); the caller never sees it
    assert arts[".tflite"].stat().st_size and built[arts[".tflite"].name]["input"]["dtype"] == "int8"
    assert built[arts[".pte"].name]["input"]["dtype"] == "float32"
    same = np.mean([a.label == b.label for a, b in zip(answers[".tflite"], answers[".pte"])])
    assert same >= 0.99, f"the formats agree on {same:.1%} of the held-out digits"
    assert 100.0 * np.mean([a.index == y for a, y in zip(answers[".tflite"], labels)]) > 80


def test_every_input_form_gives_the_same_answer(rpi5_build, digits, tmp_path):
    from PIL import Image

    image = digits[0][5]
    u8 = np.round(image * 255).astype(np.uint8)
    png = tmp_path / "digit.png"
    Image.fromarray(u8, "L").save(png)
    rgb = np.repeat(u8[..., None], 3, axis=-1)
    forms = {"path": (png,), "str": (str(png),), "PIL": (Image.open(png),), "uint8 HxW": (u8,),
             "uint8 HxWx3": (rgb,), "uint8 HxWx4": (np.concatenate([rgb, np.full_like(u8[..., None], 255)], -1),),
             "float HxWx1": (u8[..., None] / np.float32(255),), "float CHW": (rgb.transpose(2, 0, 1) / 255.0, "CHW"),
             "uint16": ((u8.astype(np.uint16) * 257),)}
    with Classifier(_int8(rpi5_build)[".tflite"]) as model:
        results = {name: model.predict(*args) for name, args in forms.items()}
        batch = model.predict_all([u8, rgb])
    first = results["path"]
    for name, r in results.items():
        np.testing.assert_allclose(r.logits, first.logits, atol=1e-6, err_msg=name)
    assert [b.label for b in batch] == [first.label] * 2
    assert abs(float(first.probabilities.sum()) - 1.0) < 1e-5 and first.probability == first.top(1)[0][1]
    top = first.top(5)
    assert len(top) == 5 and [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert first.labels == tuple(json.loads((rpi5_build / "manifest.json").read_text())["labels"])
    assert first.to_dict(3)["label"] == first.label and len(first.to_dict(3)["top"]) == 3
    assert classify(_int8(rpi5_build)[".tflite"], png).label == first.label


@pytest.mark.parametrize("image, layout, match", [
    (np.full((8, 8), 255.0, np.float32), "HWC", "must lie in \\[0, 1\\]"),
    (np.full((8, 8), np.nan, np.float32), "HWC", "must lie in \\[0, 1\\]"),
    (np.zeros((2, 8, 8, 3), np.uint8), "HWC", "not a batch"),
    (np.zeros((8, 8, 2), np.uint8), "HWC", "C in 1, 3, 4"),
    (np.zeros((0, 8), np.uint8), "HWC", "sides of"),
    (np.zeros((8, 8), np.int32), "HWC", "not an image type"),
    (np.zeros((8, 8), bool), "HWC", "not an image type"),
    (np.zeros((8, 8, 3), np.uint8), "NHWC", "layout 'NHWC'"),
    ([[0, 1], [1, 0]], "HWC", "from a list"),
    ("no/such/image.png", "HWC", "not a regular file"),
])
def test_bad_images_are_named_errors(image, layout, match):
    with pytest.raises(EdgecnError, match=match):
        to_unit_float(image, layout)


def test_an_artifact_that_fails_verification_or_has_no_spec_is_refused(rpi5_build, tmp_path):
    folder = tmp_path / "build"
    shutil.copytree(rpi5_build, folder)
    tflite = _int8(folder)[".tflite"]
    with open(tflite, "ab") as f:
        f.write(b"\0")
    with pytest.raises(EdgecnError, match="cannot be verified"):
        Classifier(tflite)
    alone = tmp_path / "alone"
    alone.mkdir()
    pte = shutil.copy(_int8(rpi5_build)[".pte"], alone)  # without its sidecar spec
    with pytest.raises(EdgecnError, match="carries no input spec"):
        Classifier(pte)
    with pytest.raises(EdgecnError, match="does not exist"):
        Classifier(tmp_path / "missing.tflite")


def test_a_tflite_copied_alone_answers_like_its_build(rpi5_build, digits, tmp_path):
    """A .tflite carries its spec: labels, normalisation and quantization travel inside the file."""
    art = _int8(rpi5_build)[".tflite"]
    alone = Path(shutil.copy(art, tmp_path))
    with Classifier(art) as built, Classifier(alone) as copied:
        assert not copied.verified and copied.labels == built.labels
        for img in digits[0][:20]:
            np.testing.assert_array_equal(copied.predict(img).logits, built.predict(img).logits)


def test_the_predict_api_leaves_torch_unloaded(rpi5_build, tmp_path):
    code = ("import sys, numpy as np; from edgecn.runner import Classifier; "
            f"m = Classifier({str(_int8(rpi5_build)['.tflite'])!r}).open(); "
            "print(m.predict(np.zeros((8, 8), np.uint8)).label); m.close(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print('TORCH-FREE')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0 and "TORCH-FREE" in proc.stdout, proc.stderr[-2000:]


def test_edgecn_classify_answers_files_and_folders(rpi5_build, digits, tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.round(digits[0][i] * 255).astype(np.uint8), "L").save(folder / f"{i}.png")
    np.save(folder / "3.npy", digits[0][3])
    art = str(_int8(rpi5_build)[".tflite"])
    proc = subprocess.run([sys.executable, "-m", "edgecn", "classify", art, str(folder), "--json", "--top", "3"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["verified"] and [Path(r["image"]).name for r in doc["results"]] == ["0.png", "1.png", "2.png", "3.npy"]
    with Classifier(art) as model:
        expected = [model.predict(digits[0][i]).label for i in range(4)]
    assert [r["label"] for r in doc["results"]] == expected and all(len(r["top"]) == 3 for r in doc["results"])
    table = subprocess.run([sys.executable, "-m", "edgecn", "classify", art, str(folder / "0.png")],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
    assert table.returncode == 0 and "probability" in table.stdout and "0.png" in table.stdout
    (folder / "bad.png").write_bytes(b"not a png")
    bad = subprocess.run([sys.executable, "-m", "edgecn", "classify", art, str(folder / "bad.png")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "bad.png" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("suffix", [".tflite", ".pte"])
def test_the_bytes_verified_are_the_bytes_that_run(rpi5_build, digits, tmp_path, suffix, native):
    """A file replaced between the sha256 check and the load: the verified bytes still run, not the new file."""
    folder = tmp_path / "build"
    shutil.copytree(rpi5_build, folder)
    art = _int8(folder)[suffix]
    with Classifier(_int8(rpi5_build)[suffix]) as reference:
        want = reference.predict(digits[0][0]).logits
    model = Classifier(art)  # verified here; loaded by open()
    art.write_bytes(b"\0" * 4096)  # replaced before the runtime opens it
    with model:
        assert model.verified
        np.testing.assert_array_equal(model.predict(digits[0][0]).logits, want)
    if suffix == ".pte":  # the private copy the native runner loaded is gone with the session
        assert model.runner._copy is None


def test_profile_runs_the_bytes_it_verified(artifacts, tmp_path, monkeypatch):
    from edgecn.runner import profile as profile_mod
    from edgecn.runner.profile import Options, profile_artifact

    folder = tmp_path / "a"
    shutil.copytree(artifacts, folder, ignore=shutil.ignore_patterns("int8", "steady"))
    real = profile_mod.read_verified

    def verify_then_replace(path, force):
        out = real(path, force)
        Path(path).write_bytes(b"garbage" * 100)  # the race: replaced right after the check
        return out

    monkeypatch.setattr(profile_mod, "read_verified", verify_then_replace)
    plan = profile_mod.measure.Plan(runs=3, min_seconds=0.0, warmup=0, warmup_seconds=0.0)
    r = profile_artifact(folder / "model.tflite", Options(threads=1, plan=plan))
    assert r["integrity"]["verified"] and r["runs"] == 3
