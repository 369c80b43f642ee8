"""int8 logit SQNR and top-1 of a checkpoint per backend and calibration method, with and without
the concat channel equalization (``edgecn.quantize.equalize``), in each artifact's own runtime.

Usage: python bench/int8_fidelity.py CHECKPOINT [--target rpi5] [--methods percentile,minmax]

The model is lowered with the target's rules and compiled by the backend as `edgecn build` does;
only the equalization step is switched off for the "without" rows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--target", default="rpi5")
    p.add_argument("--methods", default="percentile,minmax")
    a = p.parse_args(argv)

    import torch

    from edgecn.backends import BACKENDS, CompileContext, run
    from edgecn.checkpoint import load_checkpoint
    from edgecn.condense import deployable
    from edgecn.logs import native_output_to
    from edgecn.metrics import sqnr_db, top1
    from edgecn.passes import LoweringConfig, rewrite
    from edgecn.quantize import equalize
    from edgecn.quantize.calibration import from_dataset, load_recipe
    from edgecn.targets import get_target
    from edgecn.train.data import load_dataset

    model, extra = load_checkpoint(a.checkpoint)
    model = deployable(model).eval()
    ds = load_dataset(extra.get("dataset") or "digits", model.edgecn_config["input_size"])
    target = get_target(a.target)
    calib = from_dataset(ds.train, load_recipe(target.calibration))
    x, y = ds.heldout.tensors
    with torch.no_grad():
        ref = torch.cat([model(c) for c in x.split(32)]).numpy()
    print(f"float top-1 {top1(ref, y.numpy()):.2f}% on {len(y)} held-out images")
    real = equalize.equalize_concat_channels
    try:
        for backend in target.backends:
            b = BACKENDS.get(backend)
            if "int8" not in b.precisions:
                continue
            lowered, _ = rewrite(model, LoweringConfig.from_dict(target.lowering, backend), x[:1])
            for method in a.methods.split(","):
                for on in (False, True):
                    equalize.equalize_concat_channels = real if on else (lambda m, c, batch=16: (m, 0))
                    with tempfile.TemporaryDirectory() as tmp:
                        ctx = CompileContext(Path(tmp), "m", target.options(backend), calib, method, use_cache=False)
                        with native_output_to(Path(tmp) / "tools.log"):  # the converters' own output
                            art = b.compile(lowered, x[:1], "int8", ctx)
                        got = run(art, x.numpy())
                    print(f"{backend:10s} {method:10s} equalization {'on ' if on else 'off'}: "
                          f"SQNR {sqnr_db(ref, got):6.2f} dB  top-1 {top1(got, y.numpy()):.2f}%", flush=True)
    finally:
        equalize.equalize_concat_channels = real
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
