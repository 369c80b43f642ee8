"""--max-drop: sensitive layers are kept in float one by one until int8 holds, or the build fails clearly."""

import pytest

from edgecn.build import BuildConfig, build
from edgecn.build import pipeline
from edgecn.errors import EdgecnError


def _tracking(monkeypatch, fail_until, good_method=None, backend_name="tensorrt"):
    """Judge top-1 by a stand-in: float 50 %, int8 5 points lower while fewer than
    ``fail_until`` layers are float and the calibration method is not ``good_method``
    (a random-weight model is at chance level)."""
    import dataclasses

    from edgecn.backends import BACKENDS

    real_compare, backend = pipeline.compare, BACKENDS.get(backend_name)
    state = {}

    def compile(model, example, precision, ctx):  # each attempt's own context: what it was asked to build
        state.update(precision=precision, ctx=ctx)
        return backend.compile(model, example, precision, ctx)

    def compare(predict, x, y, float_logits):
        out = real_compare(predict, x, y, float_logits)
        lossy = (state["precision"] == "int8" and len(state["ctx"].float_layers) < fail_until
                 and state["ctx"].method != good_method)
        return {**out, "top1": 45.0 if lossy else 50.0}

    monkeypatch.setitem(BACKENDS._entries, backend_name, dataclasses.replace(backend, compile=compile))
    monkeypatch.setattr(pipeline, "compare", compare)
    monkeypatch.setattr(pipeline, "top1", lambda logits, labels: 50.0)


UNLIMITED = 864_000.0
"""--time-limit for the tests of what the search does: on a loaded machine a compile can take minutes,
and these tests are about the steps, not the clock (the clock has its own tests below)."""


def _cfg(checkpoint, out):
    return BuildConfig(target="jetson", checkpoint=str(checkpoint), out_dir=str(out), max_drop=1.0, time_limit_s=UNLIMITED,
                       calibration_size=32, precisions=("int8",), progress=False)


def test_sensitive_layer_is_kept_float_until_the_drop_holds(checkpoint, tmp_path, monkeypatch):
    _tracking(monkeypatch, fail_until=1)
    result = build(_cfg(checkpoint, tmp_path))
    (art,) = result.artifacts
    assert len(art["float_layers"]) == 1
    import onnx

    m = onnx.load(str(result.folder / art["path"]))
    producers = {o: n for n in m.graph.node for o in n.output}
    quantized = [n for n in m.graph.node if n.op_type in ("Conv", "Gemm")
                 and getattr(producers.get(n.input[1]), "op_type", None) == "DequantizeLinear"]
    float_ops = [n for n in m.graph.node if n.op_type in ("Conv", "Gemm") and n not in quantized]
    assert len(float_ops) == 1, "exactly the one sensitive layer runs in float"


def test_tflite_layer_kept_float_is_float_in_the_file(checkpoint, tmp_path, monkeypatch):
    """The .tflite converter folds a float layer between int8 neighbours back into int8; the
    build's .tflite keeps it float (read from the file's tensors), and says how it was made."""
    from tests.quantize.test_concat_ranges import _float_ops

    _tracking(monkeypatch, fail_until=1, backend_name="tflite")
    chosen = []

    def candidates(model, calib, diagnosis):  # a 1x1 conv reading a dense concatenation
        chosen[:] = [n for n, _ in model.named_modules() if n.endswith("conv_1.conv_dense_shuffled_bn")][1:2]
        return list(chosen)

    monkeypatch.setattr(pipeline, "_float_candidates", candidates)
    cfg = BuildConfig(target="rpi5", checkpoint=str(checkpoint), out_dir=str(tmp_path), max_drop=1.0, time_limit_s=UNLIMITED,
                      calibration_size=32, precisions=("int8",), backends=("tflite",), progress=False)
    result = build(cfg)
    (art,) = result.artifacts
    assert len(chosen) == 1 and art["float_layers"] == chosen
    assert any("ai-edge-quantizer" in n for n in art["notes"])
    assert _float_ops(result.folder / art["path"]) == {"CONV_2D": 1}
    assert art["input"]["dtype"] == "int8", "the rest stays int8, input included"


def test_build_fails_when_float_layers_do_not_help(checkpoint, tmp_path, monkeypatch):
    _tracking(monkeypatch, fail_until=99)
    monkeypatch.setattr(pipeline, "MAX_FLOAT_LAYERS", 2)
    with pytest.raises(EdgecnError, match="int8 loses .* even with 2 layer") as info:
        build(_cfg(checkpoint, tmp_path))
    assert "--max-drop" in info.value.fix
    assert not (tmp_path / "condensenet-light-jetson-orin-nano").exists()


def test_other_calibration_methods_are_tried_before_float_layers(checkpoint, tmp_path, monkeypatch):
    _tracking(monkeypatch, fail_until=99, good_method="entropy")
    result = build(_cfg(checkpoint, tmp_path))
    (art,) = result.artifacts
    assert art["float_layers"] == [] and art["calibration_method"] == "entropy"
    assert "entropy" in (result.folder / "report.md").read_text()


def test_a_fixed_calibration_method_is_not_replaced(checkpoint, tmp_path, monkeypatch):
    _tracking(monkeypatch, fail_until=1, good_method="entropy")
    cfg = BuildConfig(**{**_cfg(checkpoint, tmp_path).__dict__, "method": "minmax"})
    (art,) = build(cfg).artifacts
    assert art["calibration_method"] == "minmax" and len(art["float_layers"]) == 1


def _sqnr_by_method(monkeypatch, sqnr: dict):
    """Top-1 always holds; each calibration method gets the logit SQNR ``sqnr`` says."""
    import dataclasses

    from edgecn.backends import BACKENDS

    real_compare, backend = pipeline.compare, BACKENDS.get("tensorrt")
    state = {}

    def compile(model, example, precision, ctx):
        state["method"] = ctx.method
        return backend.compile(model, example, precision, ctx)

    def compare(art, x, y, float_logits):
        return {**real_compare(art, x, y, float_logits), "top1": 50.0, "sqnr_db": sqnr[state["method"]]}

    monkeypatch.setitem(BACKENDS._entries, "tensorrt", dataclasses.replace(backend, compile=compile))
    monkeypatch.setattr(pipeline, "compare", compare)
    monkeypatch.setattr(pipeline, "top1", lambda logits, labels: 50.0)


def test_low_sqnr_tries_the_other_methods_and_ships_the_most_faithful(checkpoint, tmp_path, monkeypatch):
    """Top-1 within --max-drop is not enough: below 20 dB of logit SQNR the other methods are
    tried, and of those within --max-drop the best SQNR ships (its validated file put back, not compiled again)."""
    _sqnr_by_method(monkeypatch, {"percentile": 15.0, "minmax": 18.0, "entropy": 17.0})
    cfg = BuildConfig(**{**_cfg(checkpoint, tmp_path).__dict__, "calibration": "default"})
    (art,) = build(cfg).artifacts
    assert art["calibration_method"] == "minmax" and art["sqnr_db"] == 18.0 and art["float_layers"] == []
    assert any("below 20 dB with every calibration tried" in n for n in art["notes"])
    report = (tmp_path / "condensenet-light-jetson-orin-nano" / "report.md").read_text()
    assert "Calibration: minmax on" in report, "the report names the method the artifact shipped with"
    _sqnr_by_method(monkeypatch, {"percentile": 15.0, "minmax": 29.0, "entropy": 17.0})
    (art,) = build(cfg).artifacts
    assert art["calibration_method"] == "minmax" and not art["notes"]


def test_a_failing_int8_artifact_is_diagnosed_and_fails_fast(checkpoint, tmp_path, monkeypatch):
    """A PT2E backend: after the calibration methods, the build measures what each int8 site
    costs alone. When no site costs 20 dB, keeping a layer in float cannot help (and each try is
    a compile): the artifact fails at once, with the costliest sites for report.md."""
    import dataclasses

    from edgecn.backends import BACKENDS

    real_compare, backend = pipeline.compare, BACKENDS.get("executorch")
    compiled = []

    def compile(model, example, precision, ctx):
        compiled.append((precision, ctx.method, ctx.float_layers))
        return backend.compile(model, example, precision, ctx)

    def compare(art, x, y, float_logits):  # int8 always 10 points down; the SQNR is the real one
        return {**real_compare(art, x, y, float_logits), "top1": 40.0 if art.precision == "int8" else 50.0}

    monkeypatch.setitem(BACKENDS._entries, "executorch", dataclasses.replace(backend, compile=compile))
    monkeypatch.setattr(pipeline, "compare", compare)
    monkeypatch.setattr(pipeline, "top1", lambda logits, labels: 50.0)
    cfg = BuildConfig(target="rpi5", checkpoint=str(checkpoint), out_dir=str(tmp_path), calibration_size=16, time_limit_s=UNLIMITED,
                      backends=("executorch",), precisions=("int8",), progress=False)
    with pytest.raises(EdgecnError, match="no single layer's int8 costs enough") as info:
        build(cfg)
    int8 = [c for c in compiled if c[0] == "int8"]
    assert 1 <= len(int8) <= 1 + pipeline.MAX_RETRY_COMPILES, "calibrations ranked before compiling, not all compiled"
    assert not any(c[2] for c in int8), "no float-layer retries"
    diagnosis = info.value.details
    sites = diagnosis["int8_sites"]
    assert sites and all(s["sqnr_db"] is None or s["sqnr_db"] >= 20.0 for s in sites)
    from edgecn.build.report import _diagnosis_lines

    lines = _diagnosis_lines(diagnosis)
    assert lines[0].startswith("where int8 departs from float") and sites[0]["layer"] in lines[2]


def test_the_search_stops_at_the_time_limit(checkpoint, tmp_path, monkeypatch):
    """--time-limit 0: after the first compile no other step fits; the build fails at once,
    saying which step it skipped and how to allow it, and leaves no artifact behind."""
    import dataclasses

    from edgecn.backends import BACKENDS

    _tracking(monkeypatch, fail_until=99)
    compiled = []
    backend = BACKENDS.get("tensorrt")

    def compile(model, example, precision, ctx):
        compiled.append(ctx.method)
        return backend.compile(model, example, precision, ctx)

    monkeypatch.setitem(BACKENDS._entries, "tensorrt", dataclasses.replace(backend, compile=compile))
    cfg = BuildConfig(**{**_cfg(checkpoint, tmp_path).__dict__, "time_limit_s": 0.0})
    with pytest.raises(EdgecnError, match="past --time-limit 0 s") as info:
        build(cfg)
    assert len(compiled) == 1 and "--time-limit" in info.value.fix
    assert not (tmp_path / "condensenet-light-jetson-orin-nano").exists()


def test_bisection_stops_at_the_time_limit_and_ships_what_holds(checkpoint, tmp_path, monkeypatch):
    """Time for the float-layer compile but not for fewer layers: the artifact with every blamed
    layer in float ships (slower than needed, not wrong)."""
    _tracking(monkeypatch, fail_until=1)
    fits = iter([True] * 5 + [False] * 99)  # calibrations (3), diagnosis, float-all; then out of time
    monkeypatch.setattr(pipeline.SearchBudget, "fits", lambda self, step: next(fits))
    monkeypatch.setattr(pipeline, "_float_candidates", lambda model, calib, diagnosis: [
        n for n, m in model.named_modules() if isinstance(m, __import__("torch").nn.Conv2d)][:4])
    (art,) = build(_cfg(checkpoint, tmp_path)).artifacts
    assert len(art["float_layers"]) == 4, "no time to bisect: every candidate stays float"
