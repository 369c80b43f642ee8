"""One runner: the top-1 a build records, the top-1 `edgecn profile --accuracy` measures and the
top-1 the benchmark's scoring path (``Predictor`` on the training pipeline's held-out tensors)
computes are the same number for every artifact of a build, in every backend and precision."""

from __future__ import annotations

from edgecn.metrics import top1
from edgecn.runner.evaluate import predict
from edgecn.runner.manifest import Manifest
from edgecn.runner.measure import Plan
from edgecn.runner.profile import Options, profile_artifact
from edgecn.train.data import load_dataset


def test_build_profile_and_bench_score_each_artifact_the_same(build_dir):
    manifest = Manifest.load(build_dir)
    ds = load_dataset("digits", input_size=int(manifest.model["input_size"]))
    x, y = (t.numpy() for t in ds.heldout.tensors)
    kinds = set()
    for entry in manifest.artifacts:
        built = entry.get("top1")
        profiled = profile_artifact(entry.path, Options(plan=Plan(runs=1, min_seconds=0, warmup=0, warmup_seconds=0), accuracy=True, data="digits"))
        benched = round(top1(predict(entry.path, x, entry.input, entry.output), y), 3)
        assert profiled["accuracy"]["samples"] == len(y)
        assert built == profiled["accuracy"]["top1"] == benched, (entry.path.name, built, profiled["accuracy"], benched)
        kinds.add((entry.backend, entry.precision))
    assert {"tflite", "executorch", "tensorrt"} <= {b for b, _ in kinds} and ("tflite", "int8") in kinds


def test_an_artifact_copied_alone_scores_as_in_its_build_folder(build_dir, tmp_path):
    """Users copy just the .tflite (or the .pte with its NAME.json) into an app or onto a device:
    the spec it carries must give the same top-1; without a spec, --accuracy is refused, not guessed."""
    import shutil

    import pytest

    from edgecn.errors import EdgecnError
    from edgecn.runner.spec import read_spec, sidecar

    plan = Plan(runs=1, min_seconds=0, warmup=0, warmup_seconds=0)
    for entry in Manifest.load(build_dir).artifacts:
        alone = tmp_path / entry.backend / entry.precision
        alone.mkdir(parents=True)
        shutil.copy(entry.path, alone / entry.path.name)
        if entry.get("spec") != "embedded":
            assert entry.path.suffix == ".pte" and entry.get("spec") == sidecar(entry.path).name
            shutil.copy(sidecar(entry.path), sidecar(alone / entry.path.name))
        assert read_spec(alone / entry.path.name)["input"] == entry.raw["input"]
        r = profile_artifact(alone / entry.path.name, Options(plan=plan, accuracy=True))
        assert r["integrity"]["verified"] is False and r["integrity"]["spec"]
        assert r["accuracy"]["top1"] == entry.get("top1"), entry.path.name
        if entry.path.suffix == ".pte":
            sidecar(alone / entry.path.name).unlink()
            with pytest.raises(EdgecnError, match="carries no input spec") as e:
                profile_artifact(alone / entry.path.name, Options(plan=plan, accuracy=True))
            assert "build folder" in e.value.fix and ".pte.json" in e.value.fix
