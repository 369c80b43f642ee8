"""Deployment backends: one module each, registered with ``@register_backend`` (modules found, not listed).

A backend turns a float PyTorch model into an artifact file for one precision, checks it
against the target's rules and describes it (I/O spec, op histogram, delegation). Running an
artifact is ``edgecn.runner``'s job alone (``run`` below), in the build as on the device.
Modules here import their toolchains lazily, so listing backends or loading targets
needs none of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.registry import Registry


@dataclasses.dataclass(frozen=True)
class CompileContext:
    """Everything a backend needs besides the model (a retry is a ``dataclasses.replace`` of it).

    Attributes:
        out_dir: folder the artifact is written into (the build's staging folder).
        stem: file name stem, e.g. ``condensenet-light``.
        options: the target's options for this backend (the backend's ``Options`` dataclass).
        calib: calibration inputs (N, C, H, W), float, normalised; needed for int8.
        method: calibration method.
        percentile: percentile for the ``percentile`` method.
        float_layers: module names to keep in float in an int8 artifact.
        use_cache: reuse cached calibration ranges.
        bias_correction: subtract each layer's mean int8 error from its bias
            (``edgecn.quantize.bias``); off for the diagnosis, which measures the errors.
    """

    out_dir: Path
    stem: str
    options: Any = None
    calib: Any = None
    method: str = "percentile"
    percentile: float = 99.99
    float_layers: tuple[str, ...] = ()
    use_cache: bool = True
    bias_correction: bool = True


@dataclasses.dataclass
class Artifact:
    """One compiled file and what the manifest says about it (see edgecn.runner.manifest).

    ``notes`` are remarks for people; ``device_steps`` what to run on the device before the
    artifact is used (both printed in the report as they are); ``extra`` holds a backend's
    own manifest keys, for machines (e.g. ``trtexec``).
    """

    path: Path
    backend: str
    precision: str
    input: dict
    output: dict
    ops: dict[str, int] = dataclasses.field(default_factory=dict)
    delegated_share: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    device_steps: list[str] = dataclasses.field(default_factory=list)
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Backend:
    """A registered backend (made by ``@register_backend`` from the backend module's class).

    Attributes:
        name: registry name (``executorch``, ``tflite``, ``tensorrt``).
        suffix: artifact file suffix.
        precisions: precisions it can build.
        options_type: frozen dataclass of the target's ``[<name>]`` table.
        compile: ``compile(model, example, precision, ctx) -> Artifact``.
        measure: ``measure(model, example) -> seconds`` per inference on this host, or None.
        tools: ``tools() -> {package: version}`` of the toolchain used.
        check: ``check(artifact, ctx) -> None``: backend rules the artifact must meet
            (raises EdgecnError), e.g. full delegation.
        int8_graph: ``int8_graph(model, example, ctx) -> GraphModule``: the quantized PT2E
            graph the int8 artifact is converted from, or None; the build reads it to say
            where an int8 artifact departs from float (``edgecn.quantize.diagnose``).
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    options_type: type
    compile: Callable[..., Artifact]
    measure: Callable[..., float] | None
    tools: Callable[[], dict[str, str]]
    check: Callable[..., None] | None = None
    int8_graph: Callable[..., object] | None = None


BACKENDS: Registry[Backend] = Registry("backend", "edgecn targets --backends", package="edgecn.backends")


def register_backend(name: str, *, suffix: str, precisions: tuple[str, ...]):
    """Class decorator: register the backend the class describes.

    The class holds the backend's parts by name: ``Options`` (the target's ``[name]`` table),
    ``compile``, ``tools``, and optionally ``measure``, ``check`` and ``int8_graph`` (see ``Backend``)::

        @register_backend("tflite", suffix=".tflite", precisions=("fp32", "int8"))
        class TFLite:
            Options = Options
            compile, measure, tools, check = staticmethod(compile), ...
    """

    def add(cls):
        backend = Backend(name=name, suffix=suffix, precisions=tuple(precisions), options_type=cls.Options,
                          compile=cls.compile, measure=getattr(cls, "measure", None), tools=cls.tools,
                          check=getattr(cls, "check", None), int8_graph=getattr(cls, "int8_graph", None))
        BACKENDS.register(name)(backend)
        return cls

    return add


def require(module: str, extra: str = "full"):
    """Import ``module`` or raise EdgecnError saying which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise EdgecnError(f"{module} is not installed ({e})", f"install it with `pip install 'edgecn[{extra}]'`") from e


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of ``names`` (missing ones are left out)."""
    from importlib import metadata

    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def run(artifact: Artifact, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Float logits of ``artifact`` for normalised NCHW images ``x``, run by ``edgecn.runner``.

    Backends compile, check and describe; running an artifact is the runner's alone, so the
    build scores an artifact with the code that runs it on the device.
    """
    from edgecn.runner.evaluate import predict
    from edgecn.runner.manifest import tensor_spec

    out = tensor_spec(artifact.output, str(artifact.path), "output") if artifact.output else None
    return predict(artifact.path, x, tensor_spec(artifact.input, str(artifact.path)), out, threads)


def time_fp32(compile_fn: Callable[..., Artifact], model, example, repeats: int = 20) -> float:
    """Median seconds per fp32 inference of ``model`` compiled by ``compile_fn``, run by the runner.

    What ``--lowering auto`` compares candidates with; the artifact lives in a temp folder.
    """
    import tempfile
    import time

    from edgecn.runner.evaluate import Predictor
    from edgecn.runner.manifest import tensor_spec

    with tempfile.TemporaryDirectory() as tmp:
        art = compile_fn(model, example, "fp32", CompileContext(Path(tmp), "measure"))
        with Predictor(art.path, tensor_spec(art.input, str(art.path))) as predict:
            x = example.numpy()
            predict(x)  # first inference pays one-off set-up costs
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                predict(x)
                times.append(time.perf_counter() - t)
    return float(np.median(times))


def artifact_path(ctx: CompileContext, precision: str, suffix: str) -> Path:
    return Path(ctx.out_dir) / f"{ctx.stem}-{precision}{suffix}"


__all__ = ["Artifact", "BACKENDS", "Backend", "CompileContext", "package_versions", "register_backend",
           "require", "run"]
