"""The artifacts compared: edgecn's build against what a user would export instead.

Per model and backend (.pte, .tflite):
    edgecn      what `edgecn build --target rpi5` makes (``edgecn.build``: condensed, rewritten
                for the target, quantized, checked), fp32 and int8
    train       the training form exported as it is (masked dense 1x1 convs), fp32 and int8
    naive       the condensed model exported as it is (gather and shuffle left in), fp32 and int8
    previous    the condensed model in the rpi5 lowering edgecn had before groups were merged
                (native grouped convs, average pools kept, gather_cost 12 / 24), int8
plus ``ort``: the ONNX of the condensed model in onnxruntime, float and int8 (onnxruntime's
``quantize_static``: Q/DQ, per-channel int8 weights, int8 activations, min-max ranges, the
settings its documentation suggests for CPU, after its ``quant_pre_process``, from the same
calibration images). Models that do not
condense (SqueezeNet, DenseNet) have no ``train`` row: their ``naive`` export is the
training form. The alternatives go through the same backends' ``compile`` a build uses;
only which model is exported differs.

Everything is cached under bench/.cache/models/<model>/, keyed by the weights and the edgecn
sources that decide the bytes; each artifact is written into a staging folder that replaces
its cache folder only when complete (``edgecn.fileio.atomic_dir``), so an interrupted run never
leaves a half-written artifact that a rerun would take for a good one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from pathlib import Path

import torch

BACKEND_FORMS = ("edgecn", "train", "naive")
PREVIOUS_GATHER_COST = {"tflite": 12, "executorch": 24}
"""The gather prices the ARM targets carried before they were measured on the CPU they describe."""
PRECISIONS = ("fp32", "int8")
TARGET = "raspberry-pi-5"
"""The target whose build is benchmarked: it names both .pte and .tflite."""
CALIB_RANDOM = 8
"""Random calibration images for the alternatives of models without trained weights (ranges only affect accuracy)."""
DATA = "digits"
"""What edgecn's builds validate and calibrate on (untrained models get its 10 classes)."""


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
    """A model to benchmark: its checkpoint, its forms in eager PyTorch and its example input."""

    name: str
    checkpoint: Path
    train_form: torch.nn.Module
    condensed: torch.nn.Module
    example: torch.Tensor
    calib: torch.Tensor
    weights_key: str
    condensable: bool
    trained: bool


def subject(name: str, checkpoint: Path, calib: torch.Tensor | None, trained: bool) -> Subject:
    """A Subject from a training-form checkpoint (condensed here when it can be)."""
    from edgecn.checkpoint import load_checkpoint
    from edgecn.condense import condense_model, is_condensable
    from edgecn.fileio import sha256_file

    model = load_checkpoint(checkpoint)[0].eval()
    size, chans = model.edgecn_config["input_size"], model.edgecn_config.get("in_channels", 3)
    if calib is None:
        calib = torch.randn(CALIB_RANDOM, chans, size, size, generator=torch.Generator().manual_seed(0))
    condensable = is_condensable(model)
    condensed = condense_model(model) if condensable else model
    # A real input for the example: zeros would let the rewrite exactness checks pass trivially.
    example = calib[:1].clone()
    return Subject(name, Path(checkpoint), model, condensed.eval(), example, calib, sha256_file(checkpoint)[:16],
                   condensable, trained)


def untrained(name: str, cache: Path, seed: int = 0) -> Subject:
    """A registered model with seeded initial weights (speed only), saved as a checkpoint in ``cache``."""
    from edgecn.checkpoint import save_checkpoint
    from edgecn.condense import is_condensable, set_progress
    from edgecn.models import create_model

    path = cache / "weights" / f"{name}-init-seed{seed}.pt"
    if not path.exists():
        torch.manual_seed(seed)
        model = create_model(name, num_classes=10)
        if is_condensable(model):
            set_progress(model, 1.0)  # the masks training would end with, drawn from the initial weights
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, model, extra={"dataset": DATA})
    return subject(name, path, None, trained=False)


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
    folder = _model_dir(cache, s)
    failed = {} if failed is None else failed
    skipped = [] if skipped is None else skipped
    forms = forms or (BACKEND_FORMS if s.condensable else ("edgecn", "naive"))
    late = deadline is not None and time.time() > deadline
    out = []
    if "edgecn" in forms:
        out += edgecn_build(s, folder, backends, late, skipped, failed, say)
    for backend in backends:
        for form in (f for f in forms if f != "edgecn"):
            model = {"train": s.train_form, "naive": s.condensed}[form]
            for precision in PRECISIONS:
                out += _alternative(s, folder, form, model, backend, precision,
                                    deadline is not None and time.time() > deadline, skipped, failed, say)
        if "edgecn" in forms and s.condensable:
            out += _alternative(s, folder, "previous", lambda b=backend: previous_lowering(s, b), backend, "int8",
                                deadline is not None and time.time() > deadline, skipped, failed, say,
                                rev=_previous_rev(backend))
    if forms != ("naive",):
        out += _onnx(s, folder, deadline is not None and time.time() > deadline, skipped, say)
        out += _onnx_int8(s, folder, deadline is not None and time.time() > deadline, skipped, failed, say)
    return out


def previous_lowering(s: Subject, backend: str):
    """``s.condensed`` in the rpi5 lowering before merged groups: what the speed goals are measured against."""
    from edgecn.passes import LoweringConfig, rewrite
    from edgecn.targets import get_target

    base = LoweringConfig.from_dict(get_target(TARGET).lowering, backend)
    return rewrite(s.condensed, previous_config(base, backend), s.example)[0]


def _previous_rev(backend: str) -> str:
    """Cache key of the baseline: it is a lowering, so it is rebuilt when the passes or its options change."""
    from edgecn.passes import LoweringConfig
    from edgecn.targets import get_target

    cfg = previous_config(LoweringConfig.from_dict(get_target(TARGET).lowering, backend), backend)
    return hashlib.sha256(f"{_lowering_rev()}|{cfg!r}".encode()).hexdigest()[:8]


def previous_config(base, backend: str):
    """The rpi5 lowering as it was when the speed goals were set: native groups, the pool kept,
    the gather prices of then, and kept gathers behind their BN/ReLU (``late_gather``, the only
    kept form then; the .pte's int8 concat beside a gather needs the plain form, so the baseline
    does not take it up), and kept shuffles in front of their BN/ReLU. It is rebuilt by today's
    passes, so a pass that improves it without a knob to turn it off moves the baseline too:
    give each such pass a knob and set it here."""
    import dataclasses as dc

    return dc.replace(base, group_conv="native", avg_pool="keep", gather_cost=PREVIOUS_GATHER_COST[backend],
                      kept_gather="late_gather", shuffle_behind_bn=False)


def edgecn_build(s: Subject, folder: Path, backends, late: bool, skipped: list, failed: dict, say) -> list[Variant]:
    """edgecn's own artifacts: ``edgecn.build`` for the target, exactly what a user gets."""
    from edgecn.build import BuildConfig, build

    out_dir, build_dir = _edgecn_dir(folder, s)
    manifest = build_dir / "manifest.json"
    if not manifest.exists():
        if late:
            skipped.append(f"{s.name}/edgecn")
            return []
        start = time.perf_counter()
        # An untrained model scores at chance: its int8 drop says nothing, so no accuracy bar holds it.
        result = build(BuildConfig(target=TARGET, checkpoint=str(s.checkpoint), data=DATA, out_dir=str(out_dir),
                                   max_drop=1.0 if s.trained else 100.0, backends=tuple(backends), progress=False))
        for f in result.failed:
            failed[f"{s.name}/edgecn-{f['precision']}.{f['backend']}"] = f["reason"]
        say(f"[bench] {s.name}: edgecn build for {TARGET} in {time.perf_counter() - start:.0f} s")
    doc = json.loads(manifest.read_text())
    out = []
    for a in doc["artifacts"]:
        if a["backend"] in backends:
            path = build_dir / a["path"]
            meta = {"ops": a.get("ops"), "delegated_share": a.get("delegated_share"), "macs": a["macs"],
                    "extra": a,  # the manifest entry: run_all picks the delegation figures from it
                    "rewrites": a.get("rewrites", []), "kept": a.get("kept", {}),
                    "input": a["input"], "output": a["output"], "top1_build": a.get("top1")}
            out.append(Variant(f"{s.name}/edgecn-{a['precision']}{path.suffix}", s.name, "edgecn", a["backend"],
                               a["precision"], path, int(a["macs"]), meta))
    return out


def _alternative(s: Subject, folder: Path, form: str, model, backend: str, precision: str, late: bool,
                 skipped: list, failed: dict, say, rev: str = "") -> list[Variant]:
    """An export a user would make instead, through the same backend; a toolchain error is the
    measured outcome (kept, so reruns skip it). ``rev``: a further cache key (the passes' hash for
    a form that edgecn's passes lower)."""
    from edgecn.backends import BACKENDS, CompileContext
    from edgecn.fileio import atomic_dir, atomic_write_text

    b = BACKENDS.get(backend)
    label = f"{s.name}/{form}-{precision}{b.suffix}"
    stem = f"{form}-{rev}-{precision}-{backend}" if rev else f"{form}-{precision}-{backend}"
    where, failure = folder / stem, folder / f"{stem}.failed"
    if failure.exists():
        failed[label] = failure.read_text()
        return []
    if not (where / "meta.json").exists():
        if late:
            skipped.append(label)
            return []
        start = time.perf_counter()
        try:
            with atomic_dir(where) as stage:
                model = model() if callable(model) and not isinstance(model, torch.nn.Module) else model
                method = "percentile" if s.trained else "minmax"
                art = b.compile(model, s.example, precision, CompileContext(stage, "a", None, s.calib, method))
                meta = {"file": art.path.name, "input": art.input, "output": art.output, "ops": art.ops,
                        "delegated_share": art.delegated_share, "extra": art.extra, "macs": _macs(model, s)}
                atomic_write_text(stage / "meta.json", json.dumps(meta, default=str))
        except Exception as e:  # noqa: BLE001 -- any exporter failure is the measured outcome
            message = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:300]
            atomic_write_text(failure, message)
            failed[label] = message
            say(f"[bench] {label} cannot be exported: {message}")
            return []
        say(f"[bench] {s.name}: built {label} in {time.perf_counter() - start:.0f} s")
    meta = json.loads((where / "meta.json").read_text())
    return [Variant(label, s.name, form, backend, precision, where / meta["file"], int(meta["macs"]), meta)]


def _onnx(s: Subject, folder: Path, late: bool, skipped: list, say) -> list[Variant]:
    """The float ONNX of the condensed model, for onnxruntime."""
    from edgecn.backends.tensorrt import export_onnx
    from edgecn.fileio import atomic_dir, atomic_write_text

    where = folder / "naive-fp32-onnx"
    if not (where / "meta.json").exists():
        if late:
            skipped.append(f"{s.name}/ort-fp32.onnx")
            return []
        say(f"[bench] {s.name}: exporting float ONNX")
        with atomic_dir(where) as stage:
            export_onnx(s.condensed, s.example, stage / "model.onnx", opset=17)
            atomic_write_text(stage / "meta.json", json.dumps({"file": "model.onnx", "macs": _macs(s.condensed, s)}))
    meta = json.loads((where / "meta.json").read_text())
    return [Variant(f"{s.name}/ort-fp32.onnx", s.name, "ort", "onnxruntime", "fp32", where / meta["file"],
                    int(meta["macs"]), meta)]


def _onnx_int8(s: Subject, folder: Path, late: bool, skipped: list, failed: dict, say) -> list[Variant]:
    """onnxruntime's static int8 of the float ONNX (what its documentation suggests for CPU)."""
    from edgecn.fileio import atomic_dir, atomic_write_text

    label = f"{s.name}/ort-int8.onnx"
    source = folder / "naive-fp32-onnx" / "model.onnx"
    where, failure = folder / "naive-int8-onnx", folder / "naive-int8-onnx.failed"
    if failure.exists():
        failed[label] = failure.read_text()
        return []
    if not (where / "meta.json").exists():
        if late or not source.exists():
            skipped.append(label)
            return []
        say(f"[bench] {s.name}: onnxruntime static int8 of the float ONNX")
        try:
            with atomic_dir(where) as stage:
                ort_quantize_static(source, stage / "model.onnx", s.calib.numpy())
                atomic_write_text(stage / "meta.json", json.dumps({"file": "model.onnx", "macs": _macs(s.condensed, s)}))
        except Exception as e:  # noqa: BLE001 -- the quantizer refusing the model is the measured outcome
            message = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:300]
            atomic_write_text(failure, message)
            failed[label] = message
            return []
    meta = json.loads((where / "meta.json").read_text())
    return [Variant(label, s.name, "ort", "onnxruntime", "int8", where / meta["file"], int(meta["macs"]), meta)]


def ort_quantize_static(source: Path, out: Path, calib) -> None:
    """``onnxruntime.quantization``: ``quant_pre_process``, then ``quantize_static`` with Q/DQ,
    per-channel int8 weights, int8 activations, min-max ranges."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = onnx.load(str(source), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter({name: calib[i:i + 1].astype("float32")} for i in range(len(calib)))

        def get_next(self):
            return next(self._it, None)

    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out.with_name("preprocessed.onnx")  # the pre-processing its documentation asks for first
    quant_pre_process(str(source), str(prepared))
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    prepared.unlink()


def real_macs(s: Subject) -> int:
    """The condensed model's multiply-adds: what the model needs, before any lowering adds zeros."""
    return _macs(s.condensed, s)


def _macs(model, s: Subject) -> int:
    """Multiply-adds of the graph that was exported."""
    from edgecn.models.stats import count

    return count(model, int(s.example.shape[-1]), int(s.example.shape[1]))["macs"]


def edgecn_manifest(s: Subject, cache: Path) -> dict | None:
    """The manifest ``edgecn.build`` wrote for ``s`` in the cache (None when it was not built)."""
    path = _edgecn_dir(cache / "models" / s.name, s)[1] / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def _edgecn_dir(folder: Path, s: Subject) -> tuple[Path, Path]:
    """Where ``edgecn.build`` writes for ``s`` in its model folder: the build's out dir and its artifacts' folder."""
    from edgecn.targets import get_target

    out_dir = folder / f"edgecn-{_lowering_rev()}"
    return out_dir, out_dir / f"{s.train_form.edgecn_config['name']}-{get_target(TARGET).name}"


def _model_dir(cache: Path, s: Subject) -> Path:
    """``cache/models/<name>``, emptied when the weights or edgecn's compile code changed."""
    import shutil

    import edgecn

    key = hashlib.sha256(f"{s.name}|{s.weights_key}|{edgecn.__version__}|{_tree_rev()}".encode()).hexdigest()[:16]
    folder = cache / "models" / s.name
    stamp = folder / "key"
    if not stamp.exists() or stamp.read_text() != key:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        stamp.write_text(key)
    return folder


@functools.lru_cache(maxsize=None)
def _tree_rev() -> str:
    """Hash of what decides an exported artifact's bytes besides the weights: edgecn's
    backend, quantization, build and model sources and the target's backend options.

    Taken once per run: a source edited while the benchmark runs must not empty the
    folder of artifacts that this run already built and is about to use.
    """
    from edgecn.targets import get_target

    from edgecn.cost.measure import source_digest

    h = source_digest("backends", "quantize", "layers", "condense", "models", "build")
    h.update(repr(sorted(get_target(TARGET).backend_options.items())).encode())
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def _lowering_rev() -> str:
    """Hash of the rewrite passes and the target's [lowering] table (edgecn's own build)."""
    from edgecn.targets import get_target

    from edgecn.cost.measure import source_digest

    h = source_digest("passes")
    h.update(json.dumps(get_target(TARGET).lowering, sort_keys=True).encode())
    return h.hexdigest()[:8]


def peak_conv(cache: Path, say=print) -> list[Variant]:
    """A single 3x3 conv 256->256 at 56x56, int8 on both backends: the runtime's best case here."""
    from edgecn.backends import BACKENDS, CompileContext
    from edgecn.fileio import atomic_dir, atomic_write_text

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(256, 256, 3, padding=1), torch.nn.ReLU()).eval()
    example, calib = torch.randn(1, 256, 56, 56), torch.randn(4, 256, 56, 56)
    macs = 256 * 256 * 9 * 56 * 56
    folder = cache / "models" / "conv3x3-256" / _tree_rev()
    out = []
    for backend in ("executorch", "tflite"):
        b = BACKENDS.get(backend)
        where = folder / f"peak-int8-{backend}"
        if not (where / "meta.json").exists():
            with atomic_dir(where) as stage:
                art = b.compile(model, example, "int8", CompileContext(stage, "a", None, calib, "minmax"))
                atomic_write_text(stage / "meta.json", json.dumps({"file": art.path.name, "macs": macs}))
            say(f"[bench] built the peak conv for {backend}")
        meta = json.loads((where / "meta.json").read_text())
        out.append(Variant(f"conv3x3-256/peak-int8{b.suffix}", "conv3x3-256", "peak", backend, "int8",
                           where / meta["file"], macs, meta))
    return out
