"""What a kept channel gather costs, in multiply-adds of the same runtime's int8 conv.

Usage: python bench/gather_cost.py [--channels 256] [--out-channels 128] [--size 28] [--threads 1]

Three int8 artifacts per backend (.pte, .tflite), timed interleaved, each in its own process:
    grouped     conv(3 -> C) -> grouped 1x1 conv (C -> O, G groups)
    gathered    conv(3 -> C) -> gather of C channels (G groups of C/G) -> the same grouped conv
    dense       conv(3 -> C) -> dense 1x1 conv (C -> O): what folding the gather costs
``gathered - grouped`` is the gather (with whatever partition boundary it brings);
``dense - grouped`` buys ``O * C * (1 - 1/G)`` multiply-adds per pixel, which prices one
multiply-add. Their quotient, per gathered value, is the ``gather_cost`` that a target's
``[lowering]`` table takes (edgecn.passes.LoweringConfig).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import timing

GROUPS = 4


def models(channels: int, out: int, size: int):
    import torch
    from torch import nn

    from edgecn.layers import ChannelGather

    g = torch.Generator().manual_seed(0)
    per = channels // GROUPS
    index = torch.cat([torch.randperm(channels, generator=g)[:per] for _ in range(GROUPS)])

    class Site(nn.Module):
        def __init__(self, form: str):
            super().__init__()
            self.stem = nn.Conv2d(3, channels, 1)
            self.gather = ChannelGather(index, channels) if form == "gathered" else nn.Identity()
            self.conv = nn.Conv2d(channels, out, 1, groups=1 if form == "dense" else GROUPS)

        def forward(self, x):
            return torch.relu(self.conv(self.gather(torch.relu(self.stem(x)))))

    torch.manual_seed(0)
    return {form: Site(form).eval() for form in ("grouped", "gathered", "dense")}


def build(folder: Path, channels: int, out: int, size: int, backends) -> dict[str, Path]:
    import torch

    from edgecn.backends import BACKENDS, CompileContext

    built = {}
    calib = torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(1))
    forms = models(channels, out, size)
    for backend in backends:
        for form, model in forms.items():
            ctx = CompileContext(folder, f"{backend}-{form}", None, calib, "minmax", use_cache=False)
            art = BACKENDS.get(backend).compile(model, calib[:1], "int8", ctx)
            built[f"{backend}/{form}"] = art.path
            print(f"[gather-cost] built {art.path.name}", flush=True)
    return built


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=256, help="gathered channels C (default 256)")
    p.add_argument("--out-channels", type=int, default=128, help="conv output channels O (default 128)")
    p.add_argument("--size", type=int, default=28, help="feature map side (default 28)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--backends", default="executorch,tflite")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    a = p.parse_args(argv)
    result = measure(a.channels, a.out_channels, a.size, a.threads, a.rounds, a.backends.split(","))
    if a.json:
        print(json.dumps(result, indent=1))
        return 0
    for b, r in result["backends"].items():
        med = r["median_ms"]
        print(f"{b:10s} grouped {med['grouped']:.3f} ms  gathered {med['gathered']:.3f} ms  "
              f"dense {med['dense']:.3f} ms  ->  gather_cost {r['gather_cost']:.1f} "
              f"MACs per gathered value [{r['min']:.1f}-{r['max']:.1f}]")
    return 0


def measure(channels: int = 256, out: int = 128, size: int = 28, threads: int = 1, rounds: int = 7,
            backends=("executorch", "tflite")) -> dict:
    """Build the three forms per backend, time them interleaved; the gather cost per backend."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(Path(tmp), channels, out, size, backends)
        times = timing.interleaved(paths, threads, rounds, 0.5, 20, say=lambda *_: None)
    pixels = size * size
    gathered_values = channels // GROUPS * GROUPS
    bought = out * channels * (1 - 1 / GROUPS) * pixels
    result = {"channels": channels, "out_channels": out, "size": size, "threads": threads, "rounds": rounds,
              "backends": {}, "command": "python bench/gather_cost.py"}
    for b in backends:
        per_round = []
        for grouped, gathered, dense in zip(*(times[f"{b}/{f}"] for f in ("grouped", "gathered", "dense"))):
            seconds_per_mac = (dense - grouped) / 1e3 / bought
            per_round.append((gathered - grouped) / 1e3 / (gathered_values * pixels) / seconds_per_mac)
        med = {f: statistics.median(times[f"{b}/{f}"]) for f in ("grouped", "gathered", "dense")}
        result["backends"][b] = {"gather_cost": statistics.median(per_round), "min": min(per_round),
                                 "max": max(per_round), "median_ms": med}
    return result


if __name__ == "__main__":
    sys.exit(main())
