"""The artifacts compared: edgecn's build against what a user would export instead.

Per model and backend (.pte, .tflite):
    edgecn      condensed, rewritten for the target (edgecn.passes), fp32 and int8
    train       the training form exported as it is (masked dense 1x1 convs), fp32 and int8
    naive       the condensed model exported as it is (gather and shuffle left in), fp32 and int8
plus ``ort``: the float ONNX of the condensed model in onnxruntime. Models that do not
condense (SqueezeNet, DenseNet) have no ``train`` row: their ``naive`` export is the
training form.

Artifacts are cached under bench/.cache/models/<model>/, keyed by the weights and the
edgecn version, and each is written to a temporary folder first, so an interrupted run
never leaves a half-written artifact that a rerun would take for a good one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

BACKEND_FORMS = ("edgecn", "train", "naive")
PRECISIONS = ("fp32", "int8")
TARGET = "raspberry-pi-5"
"""The target whose lowering and backend options are used: it names both .pte and .tflite."""
CALIB_RANDOM = 8
"""Random calibration images for models without trained weights (ranges only affect accuracy)."""


@dataclasses.dataclass
class Variant:
    """One artifact to time: ``key`` is ``<model>/<form>-<precision>.<suffix>``."""

    key: str
    model: str
    form: str
    backend: str
    precision: str
    path: Path
    macs: int
    meta: dict


@dataclasses.dataclass
class Subject:
    """A model to benchmark: its forms in eager PyTorch and its example input."""

    name: str
    train_form: torch.nn.Module
    condensed: torch.nn.Module
    example: torch.Tensor
    calib: torch.Tensor
    weights_key: str
    condensable: bool


def subject(name: str, model: torch.nn.Module, calib: torch.Tensor | None, weights_key: str) -> Subject:
    """A Subject from a training-form model (condensed here when it can be)."""
    from edgecn.condense import condense_model, is_condensable

    model = model.eval()
    size, chans = model.edgecn_config["input_size"], model.edgecn_config.get("in_channels", 3)
    example = torch.zeros(1, chans, size, size)
    if calib is None:
        calib = torch.randn(CALIB_RANDOM, chans, size, size, generator=torch.Generator().manual_seed(0))
    condensable = is_condensable(model)
    condensed = condense_model(model) if condensable else model
    # A real input for the example: zeros would let the rewrite exactness checks pass trivially.
    example = calib[:1].clone()
    return Subject(name, model, condensed.eval(), example, calib, weights_key, condensable)


def untrained(name: str, seed: int = 0) -> Subject:
    """A registered model with seeded initial weights (speed only)."""
    from edgecn.condense import is_condensable, set_progress
    from edgecn.models import create_model

    torch.manual_seed(seed)
    model = create_model(name)
    if is_condensable(model):
        set_progress(model, 1.0)  # the masks training would end with, drawn from the initial weights
    return subject(name, model, None, f"init-seed{seed}")


def build_subject(s: Subject, cache: Path, forms: tuple[str, ...] | None = None,
                  backends: tuple[str, ...] = ("executorch", "tflite"), deadline: float | None = None,
                  skipped: list | None = None, failed: dict | None = None, say=print) -> list[Variant]:
    """The artifacts of ``s`` (built or taken from the cache).

    Args:
        forms: backend forms to build (default: all that apply to the model).
        backends: which of executorch / tflite.
        deadline: ``time.time()`` after which nothing new is built; what is left out is
            appended to ``skipped``.
        failed: filled with ``{artifact: error}`` for the alternatives their toolchain
            cannot export (a finding, not a crash: the user would hit the same wall).
    """
    from edgecn.passes import LoweringConfig, rewrite
    from edgecn.targets import get_target

    folder = _model_dir(cache, s)
    target = get_target(TARGET)
    out = []
    failed = {} if failed is None else failed
    forms = forms or (BACKEND_FORMS if s.condensable else ("edgecn", "naive"))
    for backend in backends:
        lowered = None
        for form in forms:
            for precision in PRECISIONS:
                suffix = "pte" if backend == "executorch" else "tflite"
                path, label = folder / _artifact_name(form, precision, suffix), f"{s.name}/{form}-{precision}.{suffix}"
                failure = path.with_name(path.name + ".failed")
                if not path.exists() and not failure.exists() and deadline is not None and time.time() > deadline:
                    (skipped if skipped is not None else []).append(label)
                    continue
                if not path.exists() and not failure.exists():
                    if form == "edgecn" and lowered is None:
                        lowered, report = rewrite(s.condensed, LoweringConfig.from_dict(target.lowering, backend),
                                                  s.example)
                        lowered.edgecn_rewrites = _choices(report)
                    model = {"edgecn": lowered, "train": s.train_form, "naive": s.condensed}[form]
                    _try_compile(model, s, backend, precision, target.options(backend), path, failure, form, say)
                if failure.exists():
                    failed[label] = failure.read_text()
                else:
                    out.append(_variant(s, form, backend, precision, path))
    onnx = folder / "naive-fp32.onnx"
    if forms != ("naive",) and not onnx.exists() and (deadline is None or time.time() <= deadline):
        from edgecn.backends.tensorrt import export_onnx

        say(f"[bench] {s.name}: exporting float ONNX")
        with _staged(onnx) as tmp:
            export_onnx(s.condensed, s.example, tmp, opset=17)
            (tmp.parent / "meta.json").write_text(json.dumps({"macs": _macs(s.condensed, s)}))
    if onnx.exists():
        out.append(_variant(s, "ort", "onnxruntime", "fp32", onnx))
    return out


def _compile(model, s: Subject, backend: str, precision: str, options, path: Path, say) -> None:
    from edgecn.backends import BACKENDS, CompileContext

    start = time.perf_counter()
    with _staged(path) as tmp:
        ctx = CompileContext(tmp.parent, "a", options, s.calib, "minmax" if s.weights_key.startswith("init") else "percentile",
                             use_cache=True)
        art = BACKENDS.get(backend).compile(model, s.example, precision, ctx)
        os.replace(art.path, tmp)
        meta = {"input": art.input, "output": art.output, "ops": art.ops, "delegated_share": art.delegated_share,
                "extra": art.extra, "macs": _macs(model, s), "rewrites": getattr(model, "edgecn_rewrites", None)}
        (tmp.parent / "meta.json").write_text(json.dumps(meta, default=str))
    say(f"[bench] {s.name}: built {path.name} in {time.perf_counter() - start:.0f} s")


def _try_compile(model, s: Subject, backend, precision, options, path: Path, failure: Path, form: str, say) -> None:
    """Compile an alternative; a toolchain error is recorded (and kept, so reruns skip it)."""
    if form == "edgecn":  # edgecn's own artifact must build: let its error surface
        return _compile(model, s, backend, precision, options, path, say)
    try:
        _compile(model, s, backend, precision, options, path, say)
    except Exception as e:  # noqa: BLE001 -- any exporter failure is the measured outcome
        message = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:300]
        failure.write_text(message)
        say(f"[bench] {s.name}: {path.name} cannot be exported: {message}")


class _staged:
    """Write ``<tmp>/file`` and ``<tmp>/meta.json``; both move into place only on success."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Path:
        self._dir = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=".stage-"))
        return self._dir / self.path.name

    def __exit__(self, kind, *exc) -> None:
        try:
            if kind is None:
                os.replace(self._dir / "meta.json", _meta_path(self.path))
                os.replace(self._dir / self.path.name, self.path)  # last: its presence means "done"
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


def _choices(report) -> dict:
    """``{"pass:choice": count}`` of a lowering's rewritten sites and of the gathers it kept."""
    from collections import Counter

    out = Counter(f"{r['pass']}:{r['choice']}" for r in report)
    out.update(f"{r['pass']}:{r['choice']}" for r in report.kept if r["pass"] == "index")
    return dict(sorted(out.items()))


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _macs(model, s: Subject) -> int:
    """Multiply-adds of the graph that was exported (a rewrite may add some, e.g. a dense 1x1 conv)."""
    from edgecn.models.stats import count

    return count(model, int(s.example.shape[-1]), int(s.example.shape[1]))["macs"]


def _variant(s: Subject, form: str, backend: str, precision: str, path: Path) -> Variant:
    meta = json.loads(_meta_path(path).read_text())
    key = f"{s.name}/{form}-{precision}.{path.suffix[1:]}"  # the file name may carry a cache tag
    return Variant(key, s.name, form, backend, precision, path, int(meta["macs"]), meta)


def _model_dir(cache: Path, s: Subject) -> Path:
    """``cache/models/<name>``, emptied when the weights, edgecn's compile code or the target's
    backend options changed."""
    import edgecn

    key = hashlib.sha256(f"{s.name}|{s.weights_key}|{edgecn.__version__}|{_tree_rev()}".encode()).hexdigest()[:16]
    folder = cache / "models" / s.name
    stamp = folder / "key"
    if not stamp.exists() or stamp.read_text() != key:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        stamp.write_text(key)
    return folder


def _artifact_name(form: str, precision: str, suffix: str) -> str:
    """File name in the model's cache folder; edgecn's own artifacts also carry the hash of
    the rewrite passes and the target's [lowering] table, so changing how edgecn lowers
    rebuilds only them (the exported-as-is alternatives do not depend on it)."""
    tag = f"-{_lowering_rev()}" if form == "edgecn" else ""
    return f"{form}{tag}-{precision}.{suffix}"


def _sources(*subs: str) -> bytes:
    root = Path(__file__).resolve().parents[1] / "edgecn"
    return b"".join(p.read_bytes() for sub in subs for p in sorted((root / sub).glob("*.py")))


@functools.lru_cache(maxsize=None)
def _tree_rev() -> str:
    """Hash of what decides an exported artifact's bytes besides the weights: edgecn's
    backend, quantization and model sources and the target's backend options.

    Taken once per run: a source edited while the benchmark runs must not empty the
    folder of artifacts that this run already built and is about to use.
    """
    from edgecn.targets import get_target

    h = hashlib.sha256(_sources("backends", "quantize", "layers", "condense", "models"))
    h.update(repr(sorted(get_target(TARGET).backend_options.items())).encode())
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def _lowering_rev() -> str:
    """Hash of the rewrite passes and the target's [lowering] table (edgecn's own artifacts)."""
    from edgecn.targets import get_target

    h = hashlib.sha256(_sources("passes"))
    h.update(json.dumps(get_target(TARGET).lowering, sort_keys=True).encode())
    return h.hexdigest()[:8]


def peak_conv(cache: Path, say=print) -> list[Variant]:
    """A single 3x3 conv 256->256 at 56x56, int8 on both backends: the runtime's best case here."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(256, 256, 3, padding=1), torch.nn.ReLU()).eval()
    model.edgecn_config = {"name": "conv3x3-256", "num_classes": 256, "input_size": 56, "in_channels": 256}
    s = Subject("conv3x3-256", model, model, torch.randn(1, 256, 56, 56), torch.randn(4, 256, 56, 56),
                "init-seed0", False)
    folder = _model_dir(cache, s)
    out = []
    for backend, suffix in (("executorch", "pte"), ("tflite", "tflite")):
        path = folder / f"peak-int8.{suffix}"
        if not path.exists():
            _compile(model, s, backend, "int8", None, path, say)
        out.append(_variant(s, "peak", backend, "int8", path))
    return out
