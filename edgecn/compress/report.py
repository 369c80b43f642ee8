"""What compression did, per layer and in total: sparsity, bits per weight, bytes, accuracy.

Sizes are measured, not estimated: every layer is coded exactly as ``format`` writes it,
so "bytes after" includes the codebook, the Huffman tables and both bitstreams.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from torch import nn

from edgecn.compress.pruning import compressible_layers
from edgecn.compress.sparse import encode_tensor


@dataclasses.dataclass(frozen=True)
class LayerReport:
    """One conv/linear weight tensor.

    Attributes:
        bits: configured codebook bits (None: not weight-shared).
        clusters: distinct non-zero values (None: too many to code, stored raw).
        bytes_after: codebook + Huffman tables + index and position bitstreams.
        bits_per_weight: ``8 * bytes_after / params``, over all positions, pruned ones included.
    """

    name: str
    kind: str
    params: int
    sparsity: float
    bits: int | None
    clusters: int | None
    bytes_before: int
    bytes_after: int
    index_bits: int
    position_bits: int
    table_bits: int

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.bytes_after / max(self.params, 1)


@dataclasses.dataclass(frozen=True)
class CompressionReport:
    """Per-layer results, totals, and held-out top-1 (percent) at each stage."""

    layers: tuple[LayerReport, ...]
    other_bytes: int
    file_bytes: int
    accuracy: dict[str, float]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def bytes_before(self) -> int:
        return sum(layer.bytes_before for layer in self.layers)

    @property
    def bytes_after(self) -> int:
        return sum(layer.bytes_after for layer in self.layers)

    @property
    def weights_ratio(self) -> float:
        """float32 weight bytes / compressed weight bytes (conv and linear weights)."""
        return self.bytes_before / max(self.bytes_after, 1)

    @property
    def file_ratio(self) -> float:
        """All float32 tensors (weights, biases, BatchNorm) / the whole compressed file."""
        return (self.bytes_before + self.other_bytes) / max(self.file_bytes, 1)

    @property
    def sparsity(self) -> float:
        return sum(layer.sparsity * layer.params for layer in self.layers) / max(self.params, 1)

    def to_dict(self) -> dict:
        layers = [{**dataclasses.asdict(layer), "bits_per_weight": layer.bits_per_weight} for layer in self.layers]
        total = {"params": self.params, "sparsity": self.sparsity, "bytes_before": self.bytes_before,
                 "bytes_after": self.bytes_after, "bits_per_weight": 8.0 * self.bytes_after / max(self.params, 1),
                 "weights_ratio": self.weights_ratio, "other_bytes": self.other_bytes,
                 "file_bytes": self.file_bytes, "file_ratio": self.file_ratio}
        return {"layers": layers, "total": total, "accuracy": dict(self.accuracy)}

    @classmethod
    def from_dict(cls, data: dict) -> "CompressionReport":
        """The inverse of ``to_dict`` (derived figures are recomputed, not read)."""
        fields = {f.name for f in dataclasses.fields(LayerReport)}
        layers = tuple(LayerReport(**{k: v for k, v in layer.items() if k in fields}) for layer in data["layers"])
        total = data["total"]
        return cls(layers, int(total["other_bytes"]), int(total["file_bytes"]), dict(data["accuracy"]))


def measure(model: nn.Module, bits: dict[str, int] | None = None,
            accuracy: dict[str, float] | None = None) -> CompressionReport:
    """Code every conv/linear weight of ``model`` as the file would and report the sizes."""
    from edgecn.compress import format as fmt
    from edgecn.compress.store import state_arrays

    bits = bits or {}
    layers = []
    for name, m in compressible_layers(model).items():
        w = m.weight.detach().cpu().numpy().astype(np.float32)
        coded = encode_tensor(w)
        zeros = int(np.count_nonzero(w.reshape(-1).view(np.int32) == 0))
        split = coded.breakdown_bits() if coded else {"index": 0, "position": 0, "tables": 0}
        layers.append(LayerReport(
            name=name, kind="linear" if isinstance(m, nn.Linear) else "conv", params=int(w.size),
            sparsity=zeros / max(w.size, 1), bits=bits.get(name), clusters=coded.codebook.size if coded else None,
            bytes_before=int(w.nbytes), bytes_after=coded.nbytes if coded else int(w.nbytes),
            index_bits=split["index"], position_bits=split["position"], table_bits=split["tables"]))
    arrays, coded_names = state_arrays(model)
    other = sum(int(a.nbytes) for k, a in arrays.items() if k not in coded_names)
    file_bytes = len(fmt.pack(getattr(model, "edgecn_config", {}), arrays, coded_names))
    return CompressionReport(tuple(layers), other, file_bytes, dict(accuracy or {}))


def format_report(report: CompressionReport, markdown: bool = False) -> str:
    """The report as a table: one row per layer, a total row, then accuracy per stage."""
    from edgecn.report import table

    headers = ["layer", "kind", "params", "sparsity", "bits", "clusters", "KiB f32", "KiB after",
               "bits/w", "ratio"]
    rows = [[layer.name, layer.kind, f"{layer.params:,}", f"{100 * layer.sparsity:.1f}%",
             layer.bits if layer.bits is not None else "-", layer.clusters if layer.clusters is not None else "raw",
             f"{layer.bytes_before / 1024:.1f}", f"{layer.bytes_after / 1024:.2f}", f"{layer.bits_per_weight:.2f}",
             f"{layer.bytes_before / max(layer.bytes_after, 1):.1f}x"] for layer in report.layers]
    rows.append(["total", "", f"{report.params:,}", f"{100 * report.sparsity:.1f}%", "", "",
                 f"{report.bytes_before / 1024:.1f}", f"{report.bytes_after / 1024:.2f}",
                 f"{8 * report.bytes_after / max(report.params, 1):.2f}", f"{report.weights_ratio:.1f}x"])
    lines = [table(headers, rows, markdown=markdown), "",
             f"compressed file: {report.file_bytes:,} bytes (float32 tensors: "
             f"{report.bytes_before + report.other_bytes:,} bytes, {report.file_ratio:.1f}x smaller)"]
    if report.accuracy:
        lines.append("held-out top-1: " + ", ".join(f"{k} {v:.2f}%" for k, v in report.accuracy.items()))
    return "\n".join(lines)


def report_json(report: CompressionReport) -> str:
    """The report as JSON (``CompressionReport.to_dict``), for build reports and scripts."""
    return json.dumps(report.to_dict(), indent=2)
