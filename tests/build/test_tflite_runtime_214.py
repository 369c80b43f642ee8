"""A .tflite built for raspberry-pi-4 loads in tflite-runtime 2.14 (older Pi images, numpy<2)
and gives the same top-1 there as in ai-edge-litert, both run by edgecn's runner.

The separate venv is created once under the cache folder and reused; the test skips only
when pip cannot fetch tflite-runtime (no registry access).
"""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import torch

RUN = r'''
import json, sys, numpy as np
from edgecn.runner.evaluate import predict
from edgecn.runner.manifest import tensor_spec
path, data, art = sys.argv[1], np.load(sys.argv[2]), json.loads(sys.argv[3])
logits = predict(path, data, tensor_spec(art["input"]), tensor_spec(art["output"], field="output"), threads=1)
import tflite_runtime
print(json.dumps({"version": tflite_runtime.__version__, "preds": logits.argmax(1).tolist()}))
'''


def _venv() -> Path:
    root = Path(os.environ.get("EDGECN_VENV_CACHE") or Path.home() / ".cache" / "edgecn") / "venv-tflite-runtime-2.14"
    py = root / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import tflite_runtime"], capture_output=True).returncode == 0:
        return py
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "tflite-runtime==2.14.0", "numpy<2"],
                         capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        pytest.skip(f"pip could not install tflite-runtime==2.14.0: {pip.stderr.strip().splitlines()[-1:]}")
    return py


@pytest.mark.skipif(sys.version_info[:2] > (3, 11),
                    reason="tflite-runtime 2.14 has wheels up to Python 3.11")
@pytest.mark.parametrize("precision", [pytest.param("fp32", marks=pytest.mark.slow), "int8"])
def test_rpi4_tflite_loads_in_tflite_runtime_214(precision, tmp_path, monkeypatch):
    from edgecn.backends import BACKENDS, CompileContext, run
    from edgecn.condense import condense_model, set_progress
    from edgecn.models.condensenet import CondenseNet
    from edgecn.passes import LoweringConfig, rewrite
    from edgecn.targets import get_target

    monkeypatch.setenv("EDGECN_CACHE_DIR", str(tmp_path / "cache"))
    py = _venv()
    torch.manual_seed(0)
    model = CondenseNet([2, 1], [8, 8], num_classes=5).eval()
    set_progress(model, 1.0)
    gen = torch.Generator().manual_seed(0)
    x, calib = torch.randn(1, 3, 16, 16, generator=gen), torch.randn(32, 3, 16, 16, generator=gen)
    target = get_target("rpi4")
    lowered = rewrite(condense_model(model).eval(), LoweringConfig.from_dict(target.lowering), x)[0]
    tfl = BACKENDS.get("tflite")
    ctx = CompileContext(tmp_path, "m", target.options("tflite"), calib, "minmax")
    art = tfl.compile(lowered, x, precision, ctx)
    data = torch.randn(40, 3, 16, 16, generator=gen).numpy()
    ours = np.argmax(run(art, data), axis=1)
    np.save(tmp_path / "data.npy", np.ascontiguousarray(data, dtype=np.float32))
    # edgecn's runner, in a venv that has tflite-runtime 2.14 and no ai-edge-litert (its fallback)
    run = subprocess.run([str(py), "-c", RUN, str(art.path), str(tmp_path / "data.npy"),
                          json.dumps({"input": art.input, "output": art.output})],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["version"].startswith("2.14")
    assert np.mean(np.array(got["preds"]) == ours) == 1.0
