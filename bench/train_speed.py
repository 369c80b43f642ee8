"""Training throughput: the data loader alone, and a training step per precision / memory format.

    python bench/train_speed.py [--model condensenet-86 --input-size 32] [--device cpu|cuda]
                                [--batch 64] [--steps 20] [--settings fp32,bf16,bf16-cl]
                                [--loader-images 1024] [--workers N] [--json out.json]

Calls the library as ``edgecn train`` does: the loader is ``edgecn.train.loader.training_batches``
over a generated ImageFolder of JPEG files (decoded and augmented in worker processes, the
streamed path), the step is ``edgecn.train.loop.train_step`` on synthetic batches with the
model's condensing schedule advancing, so the condensing stages run during the measurement.
Each setting is measured in the same run, side by side; the CPU model and ISA flags are printed
and written with the result. After the steps, every setting's model is condensed and checked
exact against the masked training model (float32): mixed precision must not break condensing.

Settings: ``fp32``, ``bf16``, ``fp16`` (with a gradient scaler), each optionally ``-cl``
(channels_last memory format).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgecn.condense import condense_model, set_progress
from edgecn.models import create_model
from edgecn.runner.sysinfo import environment
from edgecn.train import TrainConfig
from edgecn.train.distributed import Context
from edgecn.train.loop import Precision, train_step


def write_jpegs(root: Path, images: int, side: int, classes: int = 10) -> Path:
    """An ImageFolder tree of camera-like JPEGs ~1.15x the input side (what a real folder holds)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    h, w = int(side * 1.15), int(side * 1.15 * 4 / 3)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for i in range(images):
        folder = root / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(base, i, axis=1)).save(folder / f"{i:06d}.jpg", quality=90)
    return root


def loader_speed(folder: Path, size: int, batch: int, workers: int | None, batches: int) -> dict:
    """Images/s of the streamed loader alone (decode + augment + collate), after one warm-up batch."""
    from edgecn.train.data import load_dataset
    from edgecn.train.loader import training_batches

    ds = load_dataset(str(folder), size, max_in_memory_mb=0)
    config = TrainConfig(data=str(folder), input_size=size, batch_size=batch, workers=workers)
    source = training_batches(ds, config, Context(0, 1, 0, torch.device("cpu")))
    it = source.epoch(0)
    next(it)
    t0 = time.perf_counter()
    n = 0
    for _, (x, _y) in zip(range(min(batches, source.steps - 1)), it):
        n += len(x)
    seconds = time.perf_counter() - t0
    return {"images_per_s": n / seconds, "images": n, "workers": source.workers, "batch": batch}


def step_speed(model_name: str, size: int, setting: str, device: torch.device, batch: int, steps: int,
               overrides: dict) -> dict:
    """Images/s of training steps on synthetic data; then condense and check exactness."""
    precision_name, _, cl = setting.partition("-")
    config = TrainConfig(model=model_name, input_size=size, precision=precision_name, channels_last=cl == "cl",
                         batch_size=batch, overrides=overrides)
    precision = Precision.resolve(config, device)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, input_size=size, **overrides)
    model.to(device, memory_format=precision.memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.dtype == torch.float16)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    warmup = max(2, steps // 10)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + steps):
        set_progress(model, i / (warmup + steps))  # every condensing stage happens during the run
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        train_step(model, model, optimizer, scaler, precision, x, y, 1e-5, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    set_progress(model, 1.0)
    model.to("cpu", memory_format=torch.contiguous_format).eval()
    probe = torch.randn(8, 3, size, size)
    with torch.no_grad():
        masked = model(probe)
        condensed = condense_model(model)(probe)
    scale = float(masked.abs().max()) or 1.0
    return {"setting": setting, "images_per_s": batch / float(np.median(times)), "steps": steps, "batch": batch,
            "peak_gpu_mb": peak, "condensed_max_rel_diff": float((masked - condensed).abs().max()) / scale}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="condensenet-86")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--settings", default="fp32,bf16,bf16-cl")
    ap.add_argument("--loader-images", type=int, default=1024, help="0: skip the loader measurement")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from edgecn.cli.train import parse_overrides

    overrides = parse_overrides(args.overrides)
    device = torch.device(args.device)
    env = environment()
    result = {"model": args.model, "input_size": args.input_size, "device": str(device), "machine": env,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "steps": []}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    print(f"{args.model} at {args.input_size}x{args.input_size} on {result.get('gpu', env.get('cpu'))} "
          f"({torch.get_num_threads()} threads); ISA: {' '.join(env.get('isa', []))}", flush=True)
    if args.loader_images:
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_jpegs(Path(tmp), args.loader_images, args.input_size)
            loader = loader_speed(folder, args.input_size, args.batch, args.workers,
                                  args.loader_images // args.batch)
        result["loader"] = loader
        print(f"  loader alone (JPEG decode + augment, {loader['workers']} workers): "
              f"{loader['images_per_s']:8.0f} images/s", flush=True)
    for setting in args.settings.split(","):
        r = step_speed(args.model, args.input_size, setting, device, args.batch, args.steps, overrides)
        result["steps"].append(r)
        peak = f", peak {r['peak_gpu_mb']:.0f} MB" if r["peak_gpu_mb"] is not None else ""
        print(f"  training step {setting:9s}: {r['images_per_s']:8.1f} images/s (batch {r['batch']}{peak}); "
              f"condensed vs masked max rel diff {r['condensed_max_rel_diff']:.1e}", flush=True)
    base = result["steps"][0]["images_per_s"]
    for r in result["steps"][1:]:
        print(f"  {r['setting']} / {result['steps'][0]['setting']}: {r['images_per_s'] / base:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    bad = [r["setting"] for r in result["steps"] if r["condensed_max_rel_diff"] > 1e-4]
    if bad:
        print(f"condensing is not exact after {', '.join(bad)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
