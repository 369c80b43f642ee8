"""Train SqueezeNet 1.1 on the embedded digits (32x32) and deep-compress it with `edgecn condense`'s code path.

Run: .venv/bin/python tests/compress/measure_squeezenet.py [--epochs N] [--out DIR] [--config JSON]

Writes DIR/squeezenet1_1-digits32.pt (the trained checkpoint; reused on the next run unless
--retrain), then the same as ``edgecn condense DIR/squeezenet1_1-digits32.pt``:
DIR/squeezenet1_1-digits32-compressed.edc and the checkpoint beside it, and prints the report.

The baseline is trained here, not with `edgecn train`: SqueezeNet 1.1 needs inputs of at
least 32x32 (its third max pool has nothing left to pool at 16x16, the digits' default) and
SGD at lr 0.1 leaves its final ReLU dead (loss stuck at ln 10), so this uses Adam.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from edgecn.checkpoint import save_checkpoint
from edgecn.compress import CompressionReport, DeepCompressionConfig, evaluate, format_report
from edgecn.condense import condense_checkpoint
from edgecn.models import create_model
from edgecn.train.data import load_dataset


def pretrain(model, data, epochs: int, lr: float = 3e-4, batch_size: int = 32) -> None:
    """Adam with a 2-epoch warm-up and cosine decay: plain SGD from scratch lets SqueezeNet's
    final ReLU die on this data (loss stuck at ln 10), so the baseline is trained this way."""
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    total, step = epochs * len(loader), 0
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (step + 1) / (2 * len(loader))) * 0.5 * (1 + math.cos(math.pi * step / total))
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            step += 1
    model.eval()


def trained_checkpoint(out: Path, epochs: int, retrain: bool) -> Path:
    path = out / "squeezenet1_1-digits32.pt"
    if path.exists() and not retrain:
        return path
    ds = load_dataset("digits", input_size=32)
    torch.manual_seed(0)
    model = create_model("squeezenet1_1", num_classes=len(ds.labels), input_size=32)
    t = time.time()
    pretrain(model, ds.train, epochs)
    top1 = evaluate(model, ds.heldout)
    print(f"trained {epochs} epochs in {time.time() - t:.0f}s: held-out top-1 {top1:.2f}%")
    return save_checkpoint(path, model, extra={"labels": ds.labels, "normalize": ds.normalize, "dataset": ds.name,
                                                "kind": "final", "heldout_top1": top1})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--config", default="{}", help="DeepCompressionConfig fields as JSON (default: its defaults)")
    p.add_argument("--out", default="/tmp/edgecn-deepcomp")
    p.add_argument("--retrain", action="store_true", help="train again even if DIR holds the checkpoint")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = trained_checkpoint(out, args.epochs, args.retrain)
    config = DeepCompressionConfig.from_dict(json.loads(args.config))
    t = time.time()
    result = condense_checkpoint(ckpt, config=config)
    print(f"deep compression in {time.time() - t:.0f}s with {json.dumps(config.to_dict())}")
    report = CompressionReport.from_dict(result["report"])
    print(format_report(report))
    (out / "report.json").write_text(json.dumps(result, indent=2))
    print(f"{result['compressed']}: {result['sizes']}; checkpoint {result['checkpoint']}")
    drop = report.accuracy["before"] - report.accuracy["after"]
    print(f"RESULT weights {report.weights_ratio:.1f}x smaller than float32, top-1 "
          f"{report.accuracy['before']:.2f}% -> {report.accuracy['after']:.2f}% ({-drop:+.2f} points)")


if __name__ == "__main__":
    main()
