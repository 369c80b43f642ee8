"""A target that sets ``[executorch] quantized_io`` builds an int8 .pte with int8 ends: the
build's own accuracy check runs it through the runner (which quantizes its feed per the
manifest), and a user running the shipped file with the manifest gets the float model's numbers."""

import json

import numpy as np
import torch

from edgecn.build import BuildConfig, build
from edgecn.checkpoint import load_checkpoint
from edgecn.condense import condense_model
from edgecn.metrics import sqnr_db
from edgecn.runner.manifest import Manifest

TARGET = '''name = "int8-ends"
description = "test target: an int8 .pte with int8 input and output"
arch = "aarch64"
cpu = "cortex-a76"
backends = ["executorch"]
precisions = ["int8"]
[executorch]
quantized_io = {flag}
'''


def _build(checkpoint, folder, flag: bool):
    (folder / f"t-{flag}").mkdir()
    target = folder / f"t-{flag}" / "int8-ends.toml"
    target.write_text(TARGET.format(flag=str(flag).lower()))
    return build(BuildConfig(target=str(target), checkpoint=str(checkpoint), out_dir=str(folder / f"out-{flag}"),
                             calibration_size=32, progress=False))


def test_an_int8_ended_pte_builds_checks_and_runs_from_its_manifest(checkpoint, tmp_path):
    from edgecn.runner.evaluate import Predictor  # torch-free: what the device side calls

    result = _build(checkpoint, tmp_path, True)
    assert result.complete, result.failed
    (entry,) = json.loads(result.manifest.read_text())["artifacts"]
    assert entry["input"]["dtype"] == "int8" and entry["input"]["quant"]["scale"] > 0
    assert entry["output"]["dtype"] == "int8" and entry["output"]["quant"]["scale"] > 0
    assert entry["sqnr_db"] is not None and entry["sqnr_db"] > 15, "the build's own check, in the runtime"

    model, _ = load_checkpoint(checkpoint)
    model = condense_model(model.eval()).eval()
    x = torch.rand(8, *entry["input"]["shape"][1:])
    with torch.no_grad():
        ref = model(x).numpy()
    (art,) = Manifest.load(result.folder).artifacts
    with Predictor(art.path, art.input, art.output, threads=1) as predictor:
        ours = predictor(x.numpy())
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert sqnr_db(ref, ours) > 15

    plain = _build(checkpoint, tmp_path, False)
    (float_ends,) = json.loads(plain.manifest.read_text())["artifacts"]
    assert float_ends["input"]["dtype"] == "float32" and float_ends["output"]["dtype"] == "float32"
