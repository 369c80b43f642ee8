"""The .tflite op list: no GATHER/GATHER_ND and at most one TRANSPOSE once lowered (or the gathers
gather_cost kept, still accurate); I/O as declared."""

import numpy as np
import pytest
import torch

from edgecn.backends import BACKENDS, CompileContext, run
from edgecn.metrics import sqnr_db
from edgecn.errors import EdgecnError

TFL = BACKENDS.get("tflite")
STRICT = TFL.options_type(channel_last_io=True, forbid_gather=True, max_transposes=1)


def test_lowered_fp32_tflite_has_no_gather_and_takes_nhwc(lowered, tmp_path):
    model, x, calib = lowered
    ctx = CompileContext(tmp_path, "m", STRICT)
    art = TFL.compile(model, x, "fp32", ctx)
    assert not {"GATHER", "GATHER_ND"} & set(art.ops)
    assert art.ops.get("TRANSPOSE", 0) <= 1
    assert art.input["layout"] == "NHWC" and art.input["shape"] == [1, 16, 16, 3]
    TFL.check(art, ctx)
    with torch.no_grad():
        ref = model(calib[:8]).numpy()
    assert sqnr_db(ref, run(art, calib[:8].numpy())) > 60


def test_lowered_int8_tflite_is_full_int8(lowered, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    model, x, calib = lowered
    ctx = CompileContext(tmp_path, "m", STRICT, calib, "minmax")
    art = TFL.compile(model, x, "int8", ctx)
    assert art.input["dtype"] == "int8" and art.input["quant"]["scale"] > 0
    assert art.input["layout"] == "NHWC" and art.input["shape"] == [1, 16, 16, 3]
    assert art.output["dtype"] == "int8"
    assert not {"GATHER", "GATHER_ND"} & set(art.ops)
    TFL.check(art, ctx)
    with torch.no_grad():
        ref = model(calib[:8]).numpy()
    assert sqnr_db(ref, run(art, calib[:8].numpy())) > 20


def test_unlowered_tflite_fails_the_check(condensed, tmp_path):
    model, x, _ = condensed
    ctx = CompileContext(tmp_path, "m", STRICT)
    art = TFL.compile(model, x, "fp32", ctx)
    assert art.ops.get("GATHER_ND", 0) + art.ops.get("GATHER", 0) > 0
    with pytest.raises(EdgecnError, match="GATHER"):
        TFL.check(art, ctx)


def test_input_quantization_round_trip():
    from edgecn.runner.evaluate import quantize, to_logits

    quant = {"scale": 0.5, "zero_point": -3}
    q = quantize(np.array([0.0, 1.0, 100.0, -100.0], np.float32), "int8", quant)
    assert q.tolist() == [-3, -1, 127, -128]
    assert to_logits(q, quant).tolist() == [0.0, 1.0, 65.0, -62.5]


def test_kept_gathers_give_a_correct_int8_tflite(condensed, tmp_path, monkeypatch):
    """What the ARM targets build when gather_cost keeps the gathers: GATHER ops between
    XNNPACK partitions, int8 numerics still close to the float model, the default checks pass.
    (Before late_gather, litert-torch failed here: a quantized concat output read by a gather.)"""
    from edgecn.passes import LoweringConfig, rewrite

    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    model, x, calib = condensed
    kept, _ = rewrite(model, LoweringConfig(index="auto", gather_cost=0.0, shuffle="gather"), x)
    ctx = CompileContext(tmp_path, "m", TFL.options_type(), calib, "minmax")
    art = TFL.compile(kept, x, "int8", ctx)
    # 3 index layers and the 3 shuffles behind them (their 5-D view does not convert in int8).
    assert art.ops.get("GATHER_ND", 0) + art.ops.get("GATHER", 0) == 6
    TFL.check(art, ctx)
    with torch.no_grad():
        ref = model(calib).numpy()
    assert sqnr_db(ref, run(art, calib.numpy())) > 20
