"""A build whose target wants several artifacts keeps those that passed when one fails:
they are written with the manifest, the failure is listed with its reason, exit status 3."""

import json

import pytest

from edgecn.build import BuildConfig, build
from edgecn.build import pipeline
from edgecn.errors import EdgecnError
from edgecn.runner.manifest import Manifest


def _fail_int8(monkeypatch, error):
    real = pipeline._compile_validated

    def compile_validated(backend, model, example, precision, *args, **kwargs):
        if precision == "int8":
            raise error
        return real(backend, model, example, precision, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_compile_validated", compile_validated)


def _cfg(checkpoint, out, **kw):
    return BuildConfig(target="jetson", checkpoint=str(checkpoint), out_dir=str(out), calibration_size=32,
                       progress=False, **kw)


@pytest.mark.parametrize("error", [EdgecnError("tensorrt int8 loses 30 top-1 points", "raise --max-drop"),
                                   RuntimeError("converter crashed\nwith a long trace")])
def test_failed_artifact_is_listed_and_the_others_are_kept(error, checkpoint, tmp_path, monkeypatch):
    _fail_int8(monkeypatch, error)
    result = build(_cfg(checkpoint, tmp_path))
    assert not result.complete
    (failed,) = result.failed
    assert (failed["backend"], failed["precision"]) == ("tensorrt", "int8")
    assert ("loses 30" in failed["reason"]) if isinstance(error, EdgecnError) else failed["reason"] == "RuntimeError: converter crashed"
    m = Manifest.load(result.folder)
    assert {a.precision for a in m.artifacts} == {"fp32", "fp16"}
    assert all(a.path.exists() for a in m.artifacts)
    raw = json.loads(result.manifest.read_text())
    assert raw["failed"] == [{"backend": "tensorrt", "precision": "int8", "reason": failed["reason"]}]
    report = (result.folder / "report.md").read_text()
    assert "Incomplete build" in report and failed["reason"] in report
    assert not list(result.folder.glob("*int8*")), "no half-built int8 file"


def test_cli_exits_3_on_an_incomplete_build(checkpoint, tmp_path, monkeypatch, capsys):
    from edgecn.cli import main

    _fail_int8(monkeypatch, EdgecnError("int8 lost accuracy", "raise --max-drop"))
    code = main(["build", "--target", "jetson", "--checkpoint", str(checkpoint), "--out", str(tmp_path),
                 "--calibration-size", "32", "--quiet"])
    assert code == 3
    err = capsys.readouterr().err
    assert "incomplete" in err and "tensorrt int8" in err and "report.md" in err


def test_nothing_passed_keeps_the_previous_build(checkpoint, tmp_path, monkeypatch):
    good = build(_cfg(checkpoint, tmp_path, precisions=("fp32",)))
    before = good.manifest.read_bytes()

    def always_fail(*a, **k):
        raise EdgecnError("every artifact fails", "fix the model")

    monkeypatch.setattr(pipeline, "_compile_validated", always_fail)
    with pytest.raises(EdgecnError, match="every artifact fails"):
        build(_cfg(checkpoint, tmp_path))
    assert good.manifest.read_bytes() == before


def test_a_narrower_rebuild_says_which_artifacts_of_the_previous_build_go(checkpoint, tmp_path, capsys):
    build(_cfg(checkpoint, tmp_path, precisions=("fp32", "fp16")))
    capsys.readouterr()
    build(_cfg(checkpoint, tmp_path, precisions=("fp32",)))
    err = capsys.readouterr().err
    assert "replaced" in err and "condensenet-light-fp16.onnx (fp16)" in err and "not part of this one" in err
    build(_cfg(checkpoint, tmp_path, precisions=("fp32",)))  # the same build again: nothing to say
    assert "replaced" not in capsys.readouterr().err
