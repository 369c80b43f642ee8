"""edgecn build end to end on the Jetson target (ONNX is the fastest backend to build):
manifest contents, atomic replacement, determinism and clear errors."""

import json

import pytest

from edgecn.build import BuildConfig, build
from edgecn.errors import EdgecnError
from edgecn.fileio import sha256_file
from edgecn.runner.manifest import Manifest


def _cfg(checkpoint, out, **kw):
    base = dict(target="jetson", checkpoint=str(checkpoint), out_dir=str(out), max_drop=100.0,
                calibration_size=32, progress=False)
    return BuildConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def first_build(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return build(_cfg(checkpoint, out)), out


def test_manifest_describes_every_artifact(first_build):
    result, _ = first_build
    m = Manifest.load(result.folder)
    assert m.target == "jetson-orin-nano" and len(m.labels) == 10
    assert {(a.backend, a.precision) for a in m.artifacts} == {("tensorrt", p) for p in ("fp32", "fp16", "int8")}
    raw = json.loads(result.manifest.read_text())
    assert {"onnx", "onnxruntime", "onnxsim", "torch", "edgecn"} <= set(raw["tools"])
    for a in m.artifacts:
        assert sha256_file(a.path) == a.sha256
        assert a.raw["size_bytes"] == a.path.stat().st_size
        assert a.input.normalize and a.input.shape == (1, 3, 16, 16)
        for key in ("top1", "float_top1", "sqnr_db", "ops", "trtexec", "labels", "macs", "kept", "device_steps"):
            assert a.get(key) is not None, key
        assert a.get("macs") > 0 and "trtexec" in a.get("device_steps")[0]
        assert a.get("sqnr_db") > 20
    assert (result.folder / "report.md").read_text().startswith("# condensenet-light for jetson-orin-nano")


def test_every_jetson_onnx_is_valid_by_the_spec_and_the_lint(first_build):
    """The full ONNX checker (topological order included: the fp16 converter's input casts once
    came last), strict shape inference and Polygraphy's lint, on each precision's file."""
    import onnx

    from edgecn.backends.onnx_valid import lint_problems
    from edgecn.backends.trt_check import outside_int8

    result, _ = first_build
    for a in Manifest.load(result.manifest).artifacts:
        model = onnx.load(str(a.path))
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        assert lint_problems(a.path) == [], a.path.name
        if a.precision == "int8":
            assert outside_int8(model) == [], "the jetson lowering leaves no grouped conv outside int8"
            assert a.get("outside_int8") == []


def test_same_inputs_give_identical_onnx_bytes(first_build, checkpoint, tmp_path):
    result, _ = first_build
    again = build(_cfg(checkpoint, tmp_path))
    first = {a["path"]: a["sha256"] for a in result.artifacts}
    second = {a["path"]: a["sha256"] for a in again.artifacts}
    assert first == second


def test_interrupted_build_leaves_the_previous_one(first_build, checkpoint, monkeypatch):
    from edgecn.build import pipeline

    result, out = first_build
    before = {p.name: sha256_file(p) for p in result.folder.iterdir()}
    real = pipeline._compile_validated
    calls = []

    def interrupt(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(pipeline, "_compile_validated", interrupt)
    with pytest.raises(KeyboardInterrupt):
        build(_cfg(checkpoint, out))
    assert {p.name: sha256_file(p) for p in result.folder.iterdir()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".") and "partial" in p.name]


@pytest.mark.parametrize("kw,message", [
    ({"target": "jetsn"}, "unknown target"),
    ({"calibration_size": 4}, "fewer than the 16"),
    ({"method": "median"}, "unknown calibration method"),
    ({"backends": ("tflite",)}, "has no backend 'tflite'"),
])
def test_bad_input_fails_clearly_and_writes_nothing(checkpoint, tmp_path, kw, message):
    with pytest.raises(EdgecnError, match=message):
        build(_cfg(checkpoint, tmp_path, **kw))
    assert not any(tmp_path.iterdir())


def test_mismatching_checkpoint_via_cli(tmp_path, capsys):
    import torch

    from edgecn.checkpoint import save_checkpoint
    from edgecn.cli import main
    from edgecn.models import create_model

    torch.manual_seed(0)
    ckpt = tmp_path / "five.pt"
    save_checkpoint(ckpt, create_model("condensenet-light", num_classes=5, input_size=16))
    out = tmp_path / "out"
    assert main(["build", "--target", "jetson", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert "5 classes but data 'digits' has 10" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_bad_target_file_via_cli(tmp_path, capsys, checkpoint):
    from edgecn.cli import main

    bad = tmp_path / "dev.toml"
    bad.write_text('name = "dev"\ndescription = "d"\narch = "a"\ncpu = "c"\nbackends = ["tensorrt"]\n'
                   'precisions = ["fp32"]\n[tensorrt]\nopset = "seventeen"\n')
    assert main(["build", "--target", str(bad), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]) == 2
    assert "field 'opset' must be a int" in capsys.readouterr().err


def test_backend_option_builds_only_that_backend(checkpoint, tmp_path):
    from edgecn.cli import main

    assert main(["build", "--target", "rpi5", "--checkpoint", str(checkpoint), "--backend", "tflite",
                 "--precision", "fp32", "--out", str(tmp_path), "--max-drop", "100", "--quiet"]) == 0
    (folder,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert {(a.backend, a.precision) for a in Manifest.load(folder).artifacts} == {("tflite", "fp32")}


def test_a_build_without_a_checkpoint_says_where_it_saved_the_trained_one(tmp_path):
    from edgecn.build.config import BuildConfig
    from edgecn.build.pipeline import _train_default

    lines = []
    cfg = BuildConfig(target="rpi5", out_dir=str(tmp_path), epochs=1, input_size=8, progress=False)
    _train_default(cfg, lines.append)
    saved = [line for line in lines if line.startswith("[build] trained checkpoint: ")]
    assert saved and "--checkpoint" in saved[0], lines
    path = saved[0].split("[build] trained checkpoint: ")[1].split(" (")[0]
    assert (tmp_path / ".train").is_dir() and __import__("pathlib").Path(path).is_file()
