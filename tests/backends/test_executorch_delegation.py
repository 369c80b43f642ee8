"""The .pte of a lowered condensed CondenseNet is one XNNPACK partition with nothing left out;
the unlowered one is rejected by the check, naming the op."""

import pytest
import torch

from edgecn.backends import BACKENDS, CompileContext, run
from edgecn.metrics import sqnr_db
from edgecn.errors import EdgecnError

ET = BACKENDS.get("executorch")


# fp32 is marked slow: int8 is the stricter case (Q/DQ must not split the partition).
@pytest.mark.parametrize("precision", [pytest.param("fp32", marks=pytest.mark.slow), "int8"])
def test_lowered_pte_is_one_partition(lowered, precision, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    model, x, calib = lowered
    ctx = CompileContext(tmp_path, "m", ET.options_type(), calib, "minmax")
    art = ET.compile(model, x, precision, ctx)
    assert art.extra["partitions"] == 1 and art.extra["non_delegated"] == {}
    assert art.delegated_share == 1.0
    ET.check(art, ctx)  # does not raise
    assert art.ops.get("aten.convolution", 0) >= 3
    if precision == "int8":
        assert art.ops.get("quantized_decomposed.quantize_per_tensor", 0) > 0
    with torch.no_grad():
        ref = model(calib[:8]).numpy()
    assert sqnr_db(ref, run(art, calib[:8].numpy())) > (60 if precision == "fp32" else 20)


@pytest.mark.slow
def test_unlowered_pte_fails_the_check(condensed, tmp_path):
    model, x, _ = condensed
    ctx = CompileContext(tmp_path, "m", ET.options_type())
    art = ET.compile(model, x, "fp32", ctx)
    assert art.extra["partitions"] > 1
    assert art.extra["non_delegated"].get("aten.index_select", 0) > 0
    with pytest.raises(EdgecnError, match="index_select"):
        ET.check(art, ctx)
    relaxed = CompileContext(tmp_path, "m", ET.options_type(require_full_delegation=False))
    ET.check(art, relaxed)


def test_allowed_outside_lets_only_the_named_ops_leave_xnnpack(tmp_path):
    from pathlib import Path

    from edgecn.backends import Artifact

    def art(left):
        return Artifact(Path("m.pte"), "executorch", "int8", {}, {}, extra={"partitions": 3, "non_delegated": left})

    allow = CompileContext(tmp_path, "m", ET.options_type(allowed_outside=("aten.index_select",)))
    ET.check(art({"aten.index_select": 12}), allow)  # the gathers the lowering kept: fine
    with pytest.raises(EdgecnError, match="slice_copy"):
        ET.check(art({"aten.index_select": 12, "aten.slice_copy": 2}), allow)
    with pytest.raises(EdgecnError, match="3 partition"):
        ET.check(art({"aten.index_select": 12}), CompileContext(tmp_path, "m", ET.options_type()))


def test_kept_gathers_give_a_correct_int8_pte_that_the_allow_list_accepts(condensed, tmp_path, monkeypatch):
    """What the ARM targets build when gather_cost keeps the gathers: several XNNPACK partitions
    with index_select between them, int8 numerics still close to the float model."""
    from edgecn.passes import LoweringConfig, rewrite

    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    model, x, calib = condensed
    kept, report = rewrite(model, LoweringConfig(index="auto", gather_cost=0.0, shuffle="auto"), x)
    ctx = CompileContext(tmp_path, "m", ET.options_type(allowed_outside=("aten.index_select",)), calib, "minmax")
    art = ET.compile(kept, x, "int8", ctx)
    assert art.extra["non_delegated"] == {"aten.index_select": 3} and art.extra["partitions"] > 1
    ET.check(art, ctx)  # allowed
    with pytest.raises(EdgecnError, match="index_select"):
        ET.check(art, CompileContext(tmp_path, "m", ET.options_type()))
    with torch.no_grad():
        ref = model(calib).numpy()
    assert sqnr_db(ref, run(art, calib.numpy())) > 20
