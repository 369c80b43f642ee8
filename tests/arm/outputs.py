"""Run artifacts on labelled images through edgecn's runner and save what they answered.

Usage: python outputs.py OUT.npz FOLDER ARTIFACT [...]   (torch-free; runs on the host and on the emulated ARM)

The images come from FOLDER (one subfolder per class, .npy arrays HxWxC in [0, 1]) through the
runner's own input pipeline, shaped, normalised and quantized as each artifact's manifest says.
Saves, per artifact, the raw outputs, the float logits and the labels; prints one JSON line per
artifact with the runtime and versions that ran it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edgecn.runner import open_runner
from edgecn.runner.evaluate import output_quant, to_logits
from edgecn.runner.inputs import folder_inputs, input_spec
from edgecn.runner.profile import verify


def main(out: str, folder: str, *artifacts: str) -> None:
    saved = {}
    for i, path in enumerate(artifacts):
        entry, integrity = verify(Path(path), False)  # as `edgecn profile` does: the sha256, then the spec
        with open_runner(path, threads=1) as r:
            feed = folder_inputs(folder, input_spec(r.inputs[0], entry.input if entry else None),
                                 integrity.get("labels") or [])
            raw = np.stack([r.infer(a) for a in feed.arrays])
            quant = output_quant(r, entry.output if entry else None)
            saved[f"raw{i}"], saved[f"logits{i}"] = raw, np.stack([to_logits(y, quant) for y in raw])
            saved[f"labels{i}"] = np.asarray(feed.labels)
            print(json.dumps({"artifact": path, "runtime": r.runtime, "versions": r.versions(), "quant": quant,
                              "torch": "torch" in sys.modules}), flush=True)
    np.savez(out, **saved)


if __name__ == "__main__":
    main(*sys.argv[1:])
