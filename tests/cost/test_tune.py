"""Choosing forms from a cost table: fastest per segment, reproduced exactly by the rewrite."""

import json

import pytest
import torch

from edgecn.cost import segments as seg
from edgecn.cost.table import CALL, CostTable, boundary_key, load_table
from edgecn.cost.tune import choose, collect, predict, variants
from edgecn.errors import EdgecnError
from edgecn.lowering import LoweringConfig
from edgecn.passes import rewrite


def _table_with(cands, pick) -> CostTable:
    """A table whose times make ``pick(forms) -> key`` the fastest form of each segment."""
    table = CostTable("tflite", 1)
    for forms in cands.forms:
        best = pick(forms)
        for key, form in forms.items():
            table.segments[key] = {"ms": 1.0 if key == best else 2.0 + len(table.segments) * 1e-3, "what": form.what,
                                   "io": ["int8", "int8"]}
    table.boundaries[boundary_key(CALL)] = {"ms": 0.25, "shape": list(CALL)}
    return table


def test_variants_cover_index_forms_and_group_rules():
    names = variants(LoweringConfig(index="late_gather", group_conv="merge"))
    assert "target" in names and "dense/native" in names and "late_gather/16" in names and "dense/dense" in names
    assert names["late_gather/8"].min_group_outputs == 8 and names["late_gather/8"].group_conv == "merge"
    # A backend that keeps gathers plain (.pte) times its kept forms plain.
    names = variants(LoweringConfig(index="auto", group_conv="merge", kept_gather="gather"))
    assert "gather/16" in names and "late_gather/16" not in names and names["gather/16"].index == "gather"


@pytest.mark.parametrize("which", ["first", "last"])
def test_the_rewrite_gives_each_segment_the_form_the_table_chose(condensed_light, which):
    model, x = condensed_light
    base = LoweringConfig(index="late_gather", group_conv="merge", shuffle="gather")
    cands = collect(model, base, x)
    pick = (lambda forms: next(iter(forms))) if which == "first" else (lambda forms: list(forms)[-1])
    table = _table_with(cands, pick)
    choices, rows = choose(cands, table)
    assert all(r.ms == 1.0 for r in rows)
    tuned, _ = rewrite(model, base, x, choices=choices)  # exact: rewrite checks every pass
    seg.shaped(tuned, x)
    parts = seg.segments(tuned, keep=set(cands.ends))
    assert [seg.describe(tuned, p)[0] for p in parts] == [r.form.key for r in rows]
    got = predict(tuned, x, table, cands.ends)
    assert got.missing == () and got.total_ms == pytest.approx(len(rows) * 1.0 - (len(rows) - 1) * 0.25)


def test_forms_differ_between_variants(condensed_light):
    model, x = condensed_light
    cands = collect(model, LoweringConfig(index="late_gather", group_conv="merge", shuffle="gather"), x)
    per_layer = [len(f) for f, end in zip(cands.forms, cands.ends) if end.startswith("cat")]
    assert min(per_layer) >= 3  # dense fold and several merges of the kept grouped convs
    assert len(cands.models) == sum(len(f) for f in cands.forms)


def test_prediction_names_what_the_table_lacks(condensed_light):
    model, x = condensed_light
    base = LoweringConfig(index="dense")
    cands = collect(model, base, x)
    table = _table_with(cands, lambda forms: next(iter(forms)))
    table.segments.pop(next(iter(cands.forms[1])))
    lowered, _ = rewrite(model, base, x)
    got = predict(lowered, x, table, cands.ends)
    assert got.total_ms is None and cands.ends[1] in got.missing[0]


def test_table_round_trip_and_bad_files(tmp_path):
    table = CostTable("executorch", 2, machine={"cpu": "Cortex-A76", "isa": ["asimddp"]}, runtime={"executorch": "1.5.1"},
                      segments={"abc": {"ms": 0.5, "what": "conv", "io": ["float32", "float32"]}},
                      boundaries={"1x8x4x4": {"ms": 0.01, "shape": [1, 8, 4, 4]}})
    path = tmp_path / "t.json"
    table.save(path)
    back = load_table(path)
    assert back == table and back.boundary_ms((1, 8, 4, 4)) == 0.01 and back.boundary_ms((1, 8, 4, 4), False) is None
    assert back.converts("abc", 0) and back.converts("unknown", 1)
    for text, why in (("{", "not valid JSON"), ('{"format": "x"}', "not an edgecn cost table"),
                      (path.read_text().replace("0.5", "NaN"), "is NaN, which JSON does not allow"),
                      (path.read_text().replace("0.5", "-1"), "malformed"),
                      (path.read_text().replace('"version": 1', '"version": 9'), "version 9")):
        path.write_text(text)
        with pytest.raises(EdgecnError, match=why):
            load_table(path)
    with pytest.raises(EdgecnError, match="does not exist"):
        load_table(tmp_path / "missing.json")
    assert json.loads(json.dumps(table.to_json()))["segments"]["abc"]["io"] == ["float32", "float32"]


def test_cost_table_option_is_checked():
    assert LoweringConfig.from_dict({"cost_table": {"tflite": "costs/a.json"}}, "tflite").cost_table == "costs/a.json"
    assert LoweringConfig.from_dict({"cost_table": {"tflite": "costs/a.json"}}, "executorch").cost_table is None
    with pytest.raises(EdgecnError, match="cost_table"):
        LoweringConfig(cost_table="  ")
    with pytest.raises(EdgecnError, match="cost_table"):
        LoweringConfig.from_dict({"cost_table": 3})
