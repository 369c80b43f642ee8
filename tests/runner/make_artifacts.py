"""Build small test artifacts (.tflite, .pte, .onnx) from a conv-bn-relu-pool-linear model.

Run as a script in its own process (``python make_artifacts.py OUTDIR``) so the test
process never imports torch and no runtime's thread pool fights another's.
Writes OUTDIR/model.{tflite,pte,onnx} and OUTDIR/manifest.json, an int8
OUTDIR/int8/model.pte, and OUTDIR/steady/model.tflite (a model of realistic cost).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from torch import nn

SHAPE = (1, 1, 8, 8)  # the sklearn digits size, so --accuracy has real data to run on
CLASSES = 10


def model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, CLASSES))
    return m.eval()


def train_on_digits(m: nn.Module) -> None:
    """A few hundred steps on sklearn digits so that --accuracy has something to find."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.5) / 0.5
    y = torch.tensor(d.target)
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    m.train()
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    m.eval()


def export_tflite(m, x, out: Path) -> None:
    import litert_torch

    litert_torch.convert(m, (x,)).export(str(out))


def export_pte(m, x, out: Path) -> None:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    ep = torch.export.export(m, (x,))
    out.write_bytes(to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)


def export_pte_int8(m, x, out: Path) -> None:
    """Per-channel int8 through XNNPACK's quantizer, calibrated on digits-like inputs."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(m, (x,)).module(), quantizer)
    for _ in range(8):
        prepared(torch.rand_like(x) * 2 - 1)
    ep = torch.export.export(convert_pt2e(prepared), (x,))
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)


def export_onnx(m, x, out: Path) -> None:
    torch.onnx.export(m, (x,), str(out), input_names=["x"], output_names=["logits"], dynamo=False, opset_version=17)


def manifest(outdir: Path, names: list[str]) -> dict:
    arts = []
    for n in names:
        p = outdir / n
        arts.append({"path": n, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "backend": p.suffix[1:],
                     "precision": "fp32", "size_bytes": p.stat().st_size,
                     "input": {"name": "x", "shape": list(SHAPE), "layout": "NCHW", "dtype": "float32", "quant": None,
                               "normalize": {"mean": [0.5], "std": [0.5]}},
                     "output": {"name": "logits", "shape": [1, CLASSES], "dtype": "float32", "quant": None}})
    return {"format": "edgecn-manifest", "version": 1, "model": {"name": "tiny", "num_classes": CLASSES, "input_size": 8},
            "target": "test", "data": "digits", "labels": [str(i) for i in range(CLASSES)], "artifacts": arts}


def main(outdir: str) -> None:
    torch.set_num_threads(1)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    m = model()
    train_on_digits(m)
    x = torch.randn(*SHAPE)
    export_tflite(m, x, out / "model.tflite")
    export_onnx(m, x, out / "model.onnx")
    export_pte(m, x, out / "model.pte")
    (out / "manifest.json").write_text(json.dumps(manifest(out, ["model.tflite", "model.onnx", "model.pte"]), indent=1))
    export_pte_int8(m, x, out / "int8" / "model.pte")  # the .pte runner against the Python binding, on int8
    # A model of realistic cost (about 1 ms here), for checks on measurement stability: at 3 us an
    # inference, the tiny model's throughput moves with process-level effects that longer runs cannot fix.
    (out / "steady").mkdir(exist_ok=True)
    torch.manual_seed(1)
    steady = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, CLASSES)).eval()
    export_tflite(steady, torch.randn(1, 3, 48, 48), out / "steady" / "model.tflite")


if __name__ == "__main__":
    main(sys.argv[1])
