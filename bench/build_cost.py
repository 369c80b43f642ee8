"""Wall time and peak memory of `edgecn build` on a real-size model, against the goals.

    python bench/build_cost.py [--model condensenet-74-c8] [--target rpi5] [--checkpoint CK]

Without --checkpoint it saves the model with seeded initial weights (cost does not depend on
the weights) at its registered input size (224x224 for condensenet-74-c8). The build runs as
`edgecn build` in a child process, as a user runs it; its peak resident memory is the child's
(getrusage RUSAGE_CHILDREN). Prints one table and writes JSON with the CPU's model and flags.
Goals (issue: a laptop must build the paper's ImageNet model): under 10 minutes, under 8 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S, GOAL_GB = 600.0, 8.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="condensenet-74-c8")
    p.add_argument("--target", default="rpi5")
    p.add_argument("--checkpoint", default=None, help="a trained checkpoint (default: seeded initial weights)")
    p.add_argument("--json", default=None, help="write the result here as JSON")
    args = p.parse_args(argv)
    from edgecn.runner.sysinfo import environment

    with tempfile.TemporaryDirectory(prefix="edgecn-build-cost-") as tmp:
        checkpoint = args.checkpoint or _untrained(args.model, Path(tmp) / "init.pt")
        cmd = [sys.executable, "-m", "edgecn", "build", "--target", args.target, "--checkpoint", str(checkpoint),
               "--out", str(Path(tmp) / "out"), "--quiet"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6  # KiB on Linux
    result = {"model": args.model, "target": args.target, "exit": proc.returncode, "wall_s": round(wall, 1),
              "peak_rss_gb": round(peak_gb, 2), "goal_s": GOAL_S, "goal_gb": GOAL_GB,
              "met": proc.returncode == 0 and wall < GOAL_S and peak_gb < GOAL_GB, "host": environment()}
    print(f"{args.model} for {args.target}: exit {proc.returncode}, {wall / 60:.1f} min (goal < {GOAL_S / 60:.0f}), "
          f"peak {peak_gb:.2f} GB (goal < {GOAL_GB:.0f}) -> {'met' if result['met'] else 'NOT met'}")
    print(f"host: {result['host']['cpu']}, {result['host']['cores']} cores, {' '.join(result['host']['isa'])}")
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["met"] else 1


def _untrained(name: str, path: Path) -> Path:
    import torch

    from edgecn.checkpoint import save_checkpoint
    from edgecn.condense import is_condensable, set_progress
    from edgecn.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=10)  # the build validates on the embedded digits (10 classes)
    if is_condensable(model):
        set_progress(model, 1.0)  # the masks training ends with, drawn from the initial weights
    return save_checkpoint(path, model)


if __name__ == "__main__":
    sys.exit(main())
