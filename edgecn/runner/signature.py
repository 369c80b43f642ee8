"""What an artifact's own tensors are, checked against what its spec says and what a use needs.

Torch-free. An artifact that verifies (its structure, its sha256) can still be odd: no
inputs, several, a vector or an integer id where an image belongs, a dynamic dimension,
or a manifest (or embedded spec) whose shape, layout, dtype, quantization, normalisation
or labels disagree with the tensors the runtime reports. Every consumer goes through
here after the runtime has loaded the file:

- ``agree``: an artifact used with its spec (``classify``, ``profile --accuracy``/``--data``,
  the build's own scoring) must match it, or images would be laid out, scaled or labelled
  wrongly without a word;
- ``image_input``: an artifact fed images without a spec must have one image-shaped input;
- ``random_feeds``: timing needs no spec and takes any inputs (several, vectors, ids).
"""

from __future__ import annotations

import math

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.runner.base import Runner, TensorInfo
from edgecn.runner.manifest import TensorSpec

REBUILD = "rebuild it with `edgecn build` (the artifact, its manifest or its spec file was replaced or edited)"


def _channels(spec: TensorSpec) -> int | None:
    if len(spec.shape) != 4:
        return None
    return spec.shape[1] if spec.layout == "NCHW" else spec.shape[3]


def _close(a: dict | None, b: dict | None) -> bool:
    return (a is None or b is None or (a["zero_point"] == b["zero_point"]
                                       and math.isclose(a["scale"], b["scale"], rel_tol=1e-5)))


def agree(runner: Runner, spec_in: TensorSpec, spec_out: TensorSpec | None, labels, where: str,
          images: bool = True) -> None:
    """``runner``'s tensors are what its spec says: one input of that shape and dtype, labels that fit.

    ``images``: images will be fed, so the layout must give 1-4 image channels (a manifest
    edited from NCHW to NHWC shows as 8 or 16 "channels"). Off for the build's and the
    tuner's own tensors (a model segment takes any channel count).

    Raises:
        EdgecnError: naming every disagreement (up to three) between the file and its spec.
    """
    problems = []
    if len(runner.inputs) != 1:
        problems.append(f"it takes {len(runner.inputs)} inputs, its spec describes one image input")
    else:
        t = runner.inputs[0]
        if tuple(t.shape) != tuple(spec_in.shape) or t.dtype != spec_in.dtype:
            problems.append(f"its input is {t.dtype}{list(t.shape)}, its spec says {spec_in.dtype}"
                            f"{list(spec_in.shape)} {spec_in.layout}")
        if spec_in.layout in ("NCHW", "NHWC") and len(spec_in.shape) != 4:
            problems.append(f"its spec's layout {spec_in.layout} needs a 4-D shape, not {list(spec_in.shape)}")
        if spec_in.layout == "NC" and len(spec_in.shape) != 2:
            problems.append(f"its spec's layout NC needs a 2-D shape, not {list(spec_in.shape)}")
        channels = _channels(spec_in)
        if images and channels is not None and channels not in (1, 2, 3, 4):
            problems.append(f"its spec's layout {spec_in.layout} makes {channels} image channels of {list(spec_in.shape)}")
        mean = (spec_in.normalize or {}).get("mean") or []
        if channels and len(mean) not in (0, 1, channels):
            problems.append(f"its spec normalises {len(mean)} channels, its input has {channels}")
        if np.dtype(spec_in.dtype).kind in "iu" and spec_in.quant is None and t.quant is None:
            problems.append(f"its {spec_in.dtype} input has no quantization (scale, zero point) to feed it with")
        if not _close(spec_in.quant, t.quant):
            problems.append(f"its input quantization is {t.quant}, its spec says {spec_in.quant}")
    if not runner.outputs:
        problems.append("it has no outputs")
    else:
        out = runner.outputs[0]
        values = math.prod(out.shape)
        if labels and values != len(labels):
            problems.append(f"its output holds {values} values, its spec lists {len(labels)} labels")
        if spec_out is not None and (tuple(out.shape) != tuple(spec_out.shape) or out.dtype != spec_out.dtype):
            problems.append(f"its output is {out.dtype}{list(out.shape)}, its spec says {spec_out.dtype}{list(spec_out.shape)}")
        if spec_out is not None and not _close(spec_out.quant, out.quant):
            problems.append(f"its output quantization is {out.quant}, its spec says {spec_out.quant}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise EdgecnError(f"{where} does not match its spec: {'; '.join(problems[:3])}{more}", REBUILD)


def _image_problem(ins: list[TensorInfo]) -> str | None:
    """Why images cannot be fed to these inputs without a spec, or None when they can."""
    shape = tuple(ins[0].shape) if len(ins) == 1 else ()
    kind = np.dtype(ins[0].dtype).kind if len(ins) == 1 else ""
    described = ", ".join(f"{t.dtype}{list(t.shape)}" for t in ins) or "none"
    if len(ins) != 1 or len(shape) != 4 or shape[0] != 1 or not ({shape[1], shape[3]} & {1, 3, 4}) or kind == "b":
        return f"does not take one image (its inputs: {described}), so images cannot be fed to it"
    if kind in "iu" and ins[0].quant is None:
        return f"takes {described} with no quantization and carries no spec, so how an image maps to its integers is unknown"
    return None


def takes_one_image(runner: Runner) -> bool:
    """Whether ``image_input`` would accept ``runner``."""
    return _image_problem(runner.inputs) is None


def image_input(runner: Runner, where: str) -> TensorInfo:
    """The one image input of an artifact fed images without a spec (its layout is then guessed)."""
    problem = _image_problem(runner.inputs)
    if problem:
        raise EdgecnError(f"{where} {problem}", "time it with random inputs (drop --data), or pass an image "
                                                "classifier built by edgecn (it carries its spec)")
    return runner.inputs[0]


def random_feeds(runner: Runner, count: int = 8, seed: int = 0) -> list:
    """``count`` random feeds for any inputs: floats in [0, 1], integers and bools over small ranges.

    One input gives arrays, several give ``{name: array}`` (what ``Runner.infer`` takes).
    Integer inputs (ids, indices) get values from 0 to 1, in range for any embedding or
    gather; the runtime's shape for a dynamic dimension is the one fed.
    """
    rng = np.random.default_rng(seed)

    def one(t: TensorInfo) -> np.ndarray:
        dt = np.dtype(t.dtype)
        if dt.kind == "f":
            return rng.random(t.shape, dtype=np.float32).astype(dt)
        if dt.kind == "b":
            return rng.random(t.shape) < 0.5
        return rng.integers(0, 2, t.shape).astype(dt)

    feeds = []
    for _ in range(count):
        arrays = {t.name: one(t) for t in runner.inputs}
        feeds.append(next(iter(arrays.values())) if len(arrays) == 1 else arrays)
    return feeds
