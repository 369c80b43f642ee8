"""A cost table: milliseconds per segment form, measured in one runtime on one CPU, and what it predicts.

Stored as strict JSON. It records where it was measured (CPU model, ISA flags, runtime
versions, threads), because a time is only true of the machine that took it: a table
measured elsewhere is refused for measuring more, and reported, never silently mixed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from edgecn.errors import EdgecnError

FORMAT = "edgecn-cost-table"
VERSION = 1


@dataclasses.dataclass
class CostTable:
    """Per-segment int8 times of one backend, at one thread count, on one machine.

    Attributes:
        backend: ``tflite`` or ``executorch``.
        threads: the runtime's thread count when measured.
        machine: ``{"cpu", "isa", "device", "cores"}`` of the machine that measured.
        runtime: versions of the runtime packages that ran the segments, and
            ``edgecn-compile``: the revision of edgecn's code that compiled them.
        segments: ``{key: {"ms": median, "what": short form, "io": [in dtype, out dtype]}}``
            (key: ``segments.describe``).
        boundaries: ``{shape key: {"ms": median, "shape": [...]}}``: a ReLU of that shape
            alone, float in and out: one runtime call plus the conversions (quantize, layout
            change, dequantize) a segment alone pays at its ends and the model does not.
            Summing segments takes one boundary off per cut inside the model: the one of the
            cut's shape where a neighbouring segment converts there (ExecuTorch's float I/O,
            or a LiteRT segment that starts with an op the quantizer leaves float), else the
            bare runtime call (``CALL``): LiteRT segments that take and give int8, as inside
            the model, pay nothing else.
    """

    backend: str
    threads: int
    machine: dict = dataclasses.field(default_factory=dict)
    runtime: dict = dataclasses.field(default_factory=dict)
    segments: dict = dataclasses.field(default_factory=dict)
    boundaries: dict = dataclasses.field(default_factory=dict)

    def fingerprint(self) -> dict:
        return machine_fingerprint(self.machine, self.runtime)

    def segment_ms(self, key: str) -> float | None:
        entry = self.segments.get(key)
        return None if entry is None else float(entry["ms"])

    def converts(self, key: str, end: int) -> bool:
        """Whether segment ``key`` alone converts at its input (``end`` 0) or output (1)."""
        io = (self.segments.get(key) or {}).get("io") or ["float32", "float32"]
        return io[end] != "int8"

    def boundary_ms(self, shape, converts: bool = True) -> float | None:
        entry = self.boundaries.get(boundary_key(shape if converts else CALL))
        return None if entry is None else float(entry["ms"])

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "backend": self.backend, "threads": self.threads,
                "machine": self.machine, "runtime": self.runtime,
                "segments": dict(sorted(self.segments.items())), "boundaries": dict(sorted(self.boundaries.items()))}

    def save(self, path: str | Path) -> None:
        from edgecn.fileio import atomic_write_text

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n")


def machine_fingerprint(machine: dict, runtime: dict) -> dict:
    """What must match for two times to be comparable: CPU, ISA flags, runtime versions, edgecn's compile path."""
    return {"cpu": machine.get("cpu"), "isa": sorted(machine.get("isa") or []), "runtime": dict(sorted(runtime.items()))}


CALL = (1, 8, 1, 1)
"""The cut shape whose boundary is one runtime call and next to no work."""


def boundary_key(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def load_table(path: str | Path) -> CostTable:
    """Read a table written by ``CostTable.save``; a file that is not one is an error saying so."""
    from edgecn.limits import read_json

    path = Path(path)
    fix = f"measure it again with `edgecn tune --target TARGET --out {path}`"
    doc = read_json(path, "cost table", 64 << 20, fix)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EdgecnError(f"{str(path)!r} is not an edgecn cost table (no \"format\": \"{FORMAT}\")", fix)
    if doc.get("version") != VERSION:
        raise EdgecnError(f"cost table {str(path)!r} has version {doc.get('version')!r}; this edgecn reads {VERSION}", fix)
    try:
        table = CostTable(backend=str(doc["backend"]), threads=int(doc["threads"]), machine=dict(doc["machine"]),
                          runtime=dict(doc["runtime"]), segments=dict(doc["segments"]),
                          boundaries=dict(doc["boundaries"]))
        for group in (table.segments, table.boundaries):
            for key, entry in group.items():
                ms = float(entry["ms"])
                if not (math.isfinite(ms) and ms >= 0):
                    raise ValueError(f"entry {key!r} has time {ms!r}")
    except (KeyError, TypeError, ValueError) as e:
        raise EdgecnError(f"cost table {str(path)!r} is malformed ({e})", fix) from e
    return table
