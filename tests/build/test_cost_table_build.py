"""A target that names a cost table builds each layer in the form the table measured fastest."""

import json

import pytest
import torch

from edgecn.build import BuildConfig, build
from edgecn.checkpoint import load_checkpoint
from edgecn.condense import condense_model
from edgecn.cost.table import CALL, CostTable, boundary_key
from edgecn.cost.tune import collect
from edgecn.errors import EdgecnError
from edgecn.lowering import LoweringConfig

LOWERING = {"index": "late_gather", "group_conv": "merge", "shuffle": "gather"}


def _target(folder, table_name):
    path = folder / "tiny-arm.toml"
    path.write_text(f'''name = "tiny-arm"
description = "test target"
arch = "aarch64"
cpu = "cortex-a76"
backends = ["tflite"]
precisions = ["fp32"]
[lowering]
index = "late_gather"
group_conv = "merge"
shuffle = "gather"
cost_table = {{ tflite = "{table_name}" }}
''')
    return path


def test_build_takes_the_tables_fastest_forms(checkpoint, tmp_path, capfd):
    model, _ = load_checkpoint(checkpoint)
    model = condense_model(model.eval()).eval()
    cands = collect(model, LoweringConfig(**LOWERING), torch.randn(1, 3, 16, 16))
    table = CostTable("tflite", 1, machine={"cpu": "Cortex-A76 (test table)"})
    for forms in cands.forms:  # the table makes the dense fold fastest everywhere it is a form
        for key, form in forms.items():
            fast = form.variant.startswith("dense/")
            table.segments[key] = {"ms": 1.0 if fast else 2.0, "what": form.what, "io": ["int8", "int8"]}
    table.boundaries[boundary_key(CALL)] = {"ms": 0.01, "shape": list(CALL)}
    table.save(tmp_path / "costs.json")
    result = build(BuildConfig(target=str(_target(tmp_path, "costs.json")), checkpoint=str(checkpoint),
                               out_dir=str(tmp_path / "out"), progress=True))
    assert result.complete
    out, err = capfd.readouterr()  # edgecn's own lines on the terminal, the converter's in build.log
    assert "[build] tflite: cost table costs.json" in out and "LiteRT-Torch Convert" not in out + err
    assert "LiteRT-Torch Convert" in (result.folder / "build.log").read_text()
    entry = json.loads(result.manifest.read_text())["artifacts"][0]
    assert "index:dense" in entry["rewrites"] and "index:late_gather" not in entry["rewrites"]


def test_a_missing_table_is_an_error_naming_the_command(checkpoint, tmp_path):
    with pytest.raises(EdgecnError, match="edgecn tune --target tiny-arm --backend tflite"):
        build(BuildConfig(target=str(_target(tmp_path, "nope.json")), checkpoint=str(checkpoint),
                          out_dir=str(tmp_path / "out"), progress=False))
