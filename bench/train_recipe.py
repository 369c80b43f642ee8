"""Does the default recipe converge? Train one model with it for several seeds, then condense each.

    python bench/train_recipe.py --model condensenet-74-c8 --input-size 224 --seeds 0,1,2 --epochs 10
                                 [--data digits] [--out runs/recipe] [--md results.md] [--json results.json]

Each seed is ``edgecn train`` with nothing but the model, input size, epochs, data and seed (so
the recipe is the family's default), then ``edgecn condense`` of its ``final.pt`` (the condensed
model must compute what the trained one does). A seed whose folder already holds a result is
read back, not trained again (delete the folder to retrain). Prints one table: the first
epoch's loss against chance, held-out top-1 after every epoch, the final and best top-1, the
condensing check and the wall time per run, with the CPU model and ISA flags of the machine.
Runs one seed at a time with the threads torch picks: on a 2-core x86 CPU without AVX-512,
CondenseNet-74-c8 at 224x224 on digits takes about 35 minutes per 10-epoch run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="condensenet-74-c8")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--data", default="digits")
    p.add_argument("--out", default="runs/recipe", help="one folder per seed below this")
    p.add_argument("--md", default=None, help="also write the table to this markdown file")
    p.add_argument("--json", default=None, help="also write every run's history and checks as JSON")
    args = p.parse_args(argv)
    from edgecn.runner.sysinfo import environment

    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        runs.append(run_seed(args, seed))
        print(row(runs[-1]), flush=True)
    env = environment()
    lines = [f"{args.model} at {args.input_size}x{args.input_size} on {args.data}, {args.epochs} epochs, default recipe "
             f"({runs[0]['recipe']}); CPU {env.get('cpu')}, ISA {' '.join(env.get('isa') or [])}", "",
             "| seed | epoch-1 loss (chance) | held-out top-1 per epoch, % | final | best | condensed: max abs logit diff, top-1 | minutes |",
             "|---:|---|---|---:|---:|---|---:|"] + [row(r) for r in runs]
    text = "\n".join(lines)
    print("\n" + text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "runs": runs}, indent=2))
    return 0 if all(r["ok"] for r in runs) else 1


def run_seed(args, seed: int) -> dict:
    out = Path(args.out) / f"{args.model}-{args.input_size}-s{seed}"
    record = out / "bench.json"
    if record.exists():
        return json.loads(record.read_text())
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "edgecn", "train", "--model", args.model, "--input-size",
                        str(args.input_size), "--epochs", str(args.epochs), "--data", args.data, "--seed", str(seed),
                        "--out", str(out), "--overwrite", "--json"], stdout=subprocess.PIPE, stderr=None, text=True,
                       env=env)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        result = {"seed": seed, "ok": False, "returncode": r.returncode, "seconds": seconds, "history": [],
                  "recipe": "", "classes": 10}
        out.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(result, indent=2))
        return result
    train = json.loads(r.stdout)
    c = subprocess.run([sys.executable, "-m", "edgecn", "condense", train["checkpoint"], "--json"],
                       stdout=subprocess.PIPE, text=True, env=env)
    check = json.loads(c.stdout)["verification"] if c.returncode == 0 else None
    config = _config_of(train["checkpoint"])
    result = {"seed": seed, "ok": check is not None, "seconds": seconds, "history": train["history"],
              "heldout_top1": train["heldout_top1"], "best_top1": train["best_top1"], "classes": len(train["labels"]),
              "condense": check, "recipe": f"{config['optimizer']} lr {config['lr']:g} at batch {config['batch_size']}, "
                                           f"warm-up {config['warmup_epochs']:g} epoch(s)"}
    record.write_text(json.dumps(result, indent=2))
    return result


def _config_of(checkpoint: str) -> dict:
    import torch

    return torch.load(checkpoint, map_location="cpu", weights_only=True)["extra"]["config"]


def row(r: dict) -> str:
    if not r["history"]:
        return f"| {r['seed']} | failed (exit {r.get('returncode')}) | | | | | {r['seconds'] / 60:.1f} |"
    chance = math.log(r["classes"])
    first = r["history"][0]["loss"]
    per_epoch = " ".join(f"{h['heldout_top1']:.1f}" for h in r["history"])
    c = r["condense"]
    cond = (f"{c['max_abs_diff_heldout']:.1e}, {c['heldout_top1_before']:.2f} -> {c['heldout_top1_after']:.2f}"
            if c and c.get("heldout_images") else "failed")
    return (f"| {r['seed']} | {first:.2f} ({first / chance:.1f}x) | {per_epoch} | {r['heldout_top1']:.2f} | "
            f"{r['best_top1']:.2f} | {cond} | {r['seconds'] / 60:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
