"""Train SqueezeNet 1.1 on the embedded digits and deep-compress it; prints the report.

Run: .venv/bin/python tests/compress/measure_squeezenet.py [--epochs N] [--out DIR]
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

from edgecn.compress import (DeepCompressionConfig, bundle_size, deep_compress, evaluate, format_report,
                             load_compressed, report_json, save_compressed)
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.005, help="fine-tuning SGD learning rate")
    p.add_argument("--sparsity", type=float, default=0.7)
    p.add_argument("--config", default="{}", help="DeepCompressionConfig fields as JSON (override the above)")
    p.add_argument("--out", default="/tmp/edgecn-deepcomp")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ds = load_dataset("digits", input_size=32)
    model = create_model("squeezenet1_1", num_classes=len(ds.labels), input_size=32)
    t = time.time()
    pretrain(model, ds.train, args.epochs)
    print(f"trained {args.epochs} epochs in {time.time() - t:.0f}s: top-1 {evaluate(model, ds.heldout):.2f}%")
    torch.save(model.state_dict(), Path(args.out).with_suffix(".baseline.pt"))
    config = DeepCompressionConfig.from_dict({"sparsity": args.sparsity, "lr": args.lr, **json.loads(args.config)})
    t = time.time()
    report = deep_compress(model, ds.train, ds.heldout, config)
    print(f"deep_compress in {time.time() - t:.0f}s")
    print(format_report(report))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = save_compressed(out / "squeezenet1_1-digits.edc", model)
    (out / "report.json").write_text(report_json(report))
    back = load_compressed(path)
    exact = all(torch.equal(a.view(torch.int32) if a.is_floating_point() else a,
                            b.view(torch.int32) if b.is_floating_point() else b)
                for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    print(f"file {path}: {bundle_size(path)}, bit-exact reload: {exact}, reloaded top-1 {evaluate(back, ds.heldout):.2f}%")


if __name__ == "__main__":
    main()
