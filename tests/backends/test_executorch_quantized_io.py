"""``[executorch] quantized_io``: an int8 .pte that takes and returns int8, like an int8 .tflite,
and scores as the float-ended one does when the runner quantizes its input per the spec."""

import pytest
import torch

from edgecn.backends import BACKENDS, CompileContext, run
from edgecn.metrics import sqnr_db

ET = BACKENDS.get("executorch")


def test_int8_pte_with_quantized_io_has_int8_ends_and_the_same_numbers(lowered, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    model, x, calib = lowered
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    plain = ET.compile(model, x, "int8", CompileContext(tmp_path / "a", "m", ET.options_type(), calib, "minmax"))
    ctx = CompileContext(tmp_path / "b", "m", ET.options_type(quantized_io=True), calib, "minmax")
    art = ET.compile(model, x, "int8", ctx)
    assert plain.input["dtype"] == "float32" and plain.input["quant"] is None
    assert art.input["dtype"] == "int8" and art.input["quant"]["scale"] > 0
    assert art.output["dtype"] == "int8" and art.output["quant"]["scale"] > 0
    assert art.output["shape"] == [1, 5]
    assert art.extra["partitions"] == 1 and art.extra["non_delegated"] == {}
    ET.check(art, ctx)
    with torch.no_grad():
        ref = model(calib).numpy()
    ours, theirs = run(art, calib.numpy()), run(plain, calib.numpy())
    assert sqnr_db(ref, ours) > 20
    # the same program but for its two ends: the float one's input convert rounds as the app does
    assert sqnr_db(theirs, ours) > 35


def test_a_gather_reading_the_input_moves_behind_its_quantize(condensed, tmp_path, monkeypatch):
    """A segment that starts with a kept gather (what edgecn tune and the cost table time) reads
    the float input in two places; with quantized_io both read the int8 input."""
    from edgecn.cost import segments as seg
    from edgecn.passes import LoweringConfig, rewrite

    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    model, x, calib = condensed
    kept, _ = rewrite(model, LoweringConfig(index="auto", gather_cost=0.0, shuffle="auto"), x)
    seg.shaped(kept, x)
    pieces = seg.segments(kept)
    starts = [p for p in pieces if seg.describe(kept, p)[1].startswith("gather")]
    assert starts, [seg.describe(kept, p)[1] for p in pieces]
    piece = starts[-1]
    sub, shape = seg.micro_model(kept, piece), seg.input_shape(kept, piece)
    gen = torch.Generator().manual_seed(1)
    feed = torch.randn((16, *shape[1:]), generator=gen)
    opts = ET.options_type(allowed_outside=("aten.index_select",), quantized_io=True)
    art = ET.compile(sub, feed[:1], "int8", CompileContext(tmp_path, "s", opts, feed, "minmax"))
    assert art.input["dtype"] == "int8" and art.output["dtype"] == "int8"
    assert art.extra["non_delegated"].get("aten.index_select", 0) >= 1
    with torch.no_grad():
        ref = sub(feed).numpy()
    assert sqnr_db(ref.reshape(len(ref), -1), run(art, feed.numpy())) > 20


@pytest.mark.slow
def test_an_fp32_pte_ignores_quantized_io(lowered, tmp_path):
    model, x, _ = lowered
    art = ET.compile(model, x, "fp32", CompileContext(tmp_path, "m", ET.options_type(quantized_io=True)))
    assert art.input["dtype"] == "float32" and art.output["dtype"] == "float32"
