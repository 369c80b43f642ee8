"""The build manifest: what each artifact is and how to feed it. Torch-free (runs on devices).

Written by ``edgecn build`` as ``build/<model>-<target>/manifest.json`` and read by the
profiler. Schema (version 1)::

    {
      "format": "edgecn-manifest", "version": 1,
      "model": {"name": str, "num_classes": int, "input_size": int, "form": str},
      "data": "digits" | the training folder's name,
      "target": str, "created": str (ISO 8601), "tools": {package: version},
      "labels": [str, ...],
      "float_top1": float | null,
      "artifacts": [{
        "path": str (relative to the manifest), "sha256": str, "backend": str,
        "precision": "fp32" | "fp16" | "int8", "size_bytes": int,
        "input":  {"name": str, "shape": [int], "layout": "NCHW" | "NHWC", "dtype": str,
                   "quant": {"scale": float, "zero_point": int} | null,
                   "normalize": {"mean": [float], "std": [float]} | null},
        "output": {"name": str, "shape": [int], "dtype": str, "quant": {...} | null},
        "top1": float | null, "float_top1": float | null, "sqnr_db": float | null,
        "ops": {op: count}, "delegated_share": float | null,
        "float_layers": [str], "notes": [str],
        "spec": "embedded" | "NAME.json" (where the artifact's own copy of its spec is)
      }, ...]
    }

Any extra keys are kept and ignored, so newer builds stay readable.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from edgecn.errors import EdgecnError

FORMAT = "edgecn-manifest"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    layout: str = "NCHW"
    quant: dict | None = None
    normalize: dict | None = None


@dataclasses.dataclass(frozen=True)
class ArtifactEntry:
    path: Path
    sha256: str
    backend: str
    precision: str
    input: TensorSpec
    output: TensorSpec | None
    raw: dict

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)


@dataclasses.dataclass(frozen=True)
class Manifest:
    path: Path
    model: dict
    target: str
    labels: list[str]
    artifacts: list[ArtifactEntry]
    raw: dict

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Manifest":
        """Read and validate ``manifest.json``; EdgecnError names the broken field."""
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.json"
        from edgecn.limits import MiB, read_json

        if not path.exists():
            raise EdgecnError(f"manifest {str(path)!r} does not exist", "pass a build folder made by `edgecn build`")
        raw = read_json(path, "manifest", 16 * MiB, "rebuild with `edgecn build`; the file is truncated or was edited")
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: Any, path: Path) -> "Manifest":
        where = str(path)
        _expect(isinstance(raw, dict), where, "top level", "a JSON object")
        _expect(raw.get("format") == FORMAT, where, "format", f"{FORMAT!r}")
        _expect(raw.get("version") == VERSION, where, "version", f"{VERSION}")
        arts = raw.get("artifacts")
        _expect(isinstance(arts, list), where, "artifacts", "a list")
        entries = [_artifact(a, i, path.parent, where) for i, a in enumerate(arts)]
        labels = raw.get("labels") or []
        _expect(isinstance(labels, list), where, "labels", "a list of strings")
        model = raw.get("model") or {}
        _expect(isinstance(model, dict), where, "model", "an object")
        return cls(path, model, str(raw.get("target", "")), [str(x) for x in labels], entries, raw)

    def find(self, artifact: str | os.PathLike) -> ArtifactEntry | None:
        """The entry listing ``artifact`` by its name in this manifest's folder, or None."""
        p = Path(os.path.abspath(artifact))
        for e in self.artifacts:
            if Path(os.path.abspath(e.path)) == p:
                return e
        return None


def entry_from_spec(path: str | os.PathLike, spec: dict) -> ArtifactEntry:
    """The entry for an artifact known from the spec it carries (no manifest: nothing to verify against)."""
    where = f"spec of {str(path)}"
    for key in ("backend", "precision"):
        _expect(isinstance(spec.get(key), str), where, key, "a string")
    out = _tensor(spec["output"], where, "output") if spec.get("output") is not None else None
    return ArtifactEntry(Path(path), "", spec["backend"], spec["precision"], _tensor(spec.get("input"), where, "input"),
                         out, spec)


def find_manifest_for(artifact: str | os.PathLike) -> Manifest | None:
    """The manifest of the folder ``artifact`` is named in, or None when that folder has none.

    The rule that keeps the sha256 check from being sidestepped: an artifact is checked against
    the manifest beside the name it was given by (not beside a symlink's target), and
    ``verify_location`` refuses a name that the manifest does not list or a symlink that leaves
    the folder.
    """
    candidate = Path(os.path.abspath(artifact)).parent / "manifest.json"
    if not candidate.exists() and not candidate.is_symlink():
        return None
    return Manifest.load(candidate)


def tensor_spec(d: Any, where: str = "artifact", field: str = "input") -> TensorSpec:
    """A validated TensorSpec from its manifest form (EdgecnError names a broken field)."""
    return _tensor(d, where, field)


DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64")
MAX_DIM, MAX_ELEMENTS = 1 << 16, 1 << 28
"""Largest side and element count an input may declare (a 16k x 16k RGB image is 2^29.6: refused)."""


def _tensor(d: Any, where: str, field: str) -> TensorSpec:
    _expect(isinstance(d, dict), where, field, "an object")
    shape = d.get("shape")
    _expect(isinstance(shape, list) and 0 < len(shape) <= 8
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_DIM for s in shape)
            and math.prod(shape) <= MAX_ELEMENTS, where, f"{field}.shape",
            f"a list of 1-8 positive integers (each at most {MAX_DIM}, {MAX_ELEMENTS} elements in all)")
    _expect(d.get("dtype") in DTYPES, where, f"{field}.dtype", f"one of {', '.join(DTYPES)}")
    layout = d.get("layout", "NCHW")
    _expect(layout in ("NCHW", "NHWC", "NC"), where, f"{field}.layout", "'NCHW', 'NHWC' or 'NC'")
    quant = d.get("quant")
    if quant is not None:
        _expect(isinstance(quant, dict) and _finite(quant.get("scale")) and quant["scale"] > 0
                and isinstance(quant.get("zero_point"), int) and not isinstance(quant["zero_point"], bool)
                and -(1 << 31) <= quant["zero_point"] < (1 << 31),
                where, f"{field}.quant", "null or {'scale': a finite number > 0, 'zero_point': int}")
    norm = d.get("normalize")
    if norm is not None:
        _expect(isinstance(norm, dict) and isinstance(norm.get("mean"), list) and isinstance(norm.get("std"), list)
                and 0 < len(norm["mean"]) == len(norm["std"]) <= 4
                and all(_finite(v) for v in norm["mean"]) and all(_finite(v) and v > 0 for v in norm["std"]),
                where, f"{field}.normalize", "null or {'mean': [finite numbers], 'std': [as many positive numbers]}")
    return TensorSpec(str(d.get("name", "")), tuple(shape), d["dtype"], layout, quant, norm)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _artifact(a: Any, i: int, root: Path, where: str) -> ArtifactEntry:
    field = f"artifacts[{i}]"
    _expect(isinstance(a, dict), where, field, "an object")
    for key in ("path", "sha256", "backend", "precision"):
        _expect(isinstance(a.get(key), str) and a[key], where, f"{field}.{key}", "a non-empty string")
    rel = Path(a["path"])
    _expect(not rel.is_absolute() and ".." not in rel.parts, where, f"{field}.path", "a path inside the build folder")
    out = _tensor(a["output"], where, f"{field}.output") if a.get("output") is not None else None
    return ArtifactEntry(root / rel, a["sha256"].lower(), a["backend"], a["precision"],
                         _tensor(a.get("input"), where, f"{field}.input"), out, a)


def _expect(ok: bool, where: str, field: str, wanted: str) -> None:
    if not ok:
        raise EdgecnError(f"manifest {where!r}: field {field!r} must be {wanted}",
                          "rebuild with `edgecn build` (the manifest is damaged or from another tool)")
