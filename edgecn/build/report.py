"""The build manifest (schema: edgecn.runner.manifest) and the report for people."""

from __future__ import annotations

import datetime
import zlib
from pathlib import Path

from edgecn.report import table
from edgecn.runner.manifest import FORMAT, VERSION


def manifest_dict(model_info: dict, data: str, target, ds, float_top1: float, entries: list[dict], tools: dict,
                  calibration: dict, failed: list[dict] | None = None, warnings: list[str] | None = None) -> dict:
    return {
        "format": FORMAT, "version": VERSION,
        "model": model_info, "data": data,
        "target": target.name, "target_threads": target.threads,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tools": tools, "labels": list(ds.labels), "float_top1": round(float_top1, 3),
        "calibration": calibration, "artifacts": entries,
        # Artifacts the target wants that could not be built: {"backend", "precision", "reason"}.
        "failed": list(failed or []),
        # Why the float model itself is useless, if it is (top-1 at chance, one answer for all).
        "warnings": list(warnings or []),
    }


def deflated_size(path: str | Path) -> int:
    """Bytes of ``path`` deflated at level 9: what it weighs inside a zip/APK/IPA app bundle."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: what a zip entry holds
    data = Path(path).read_bytes()
    return len(deflate.compress(data) + deflate.flush())


def _size(a: dict) -> str:
    raw = f"{a['size_bytes'] / 1024:.1f}K"
    return f"{raw} ({a['size_zip_bytes'] / 1024:.1f}K zipped)" if "size_zip_bytes" in a else raw


def _calibration(a: dict) -> str | None:
    """``minmax``, ``percentile 99.999``: how an int8 artifact was calibrated (None: not int8)."""
    method = a.get("calibration_method")
    if method == "percentile" and a.get("calibration_percentile") is not None:
        return f"percentile {a['calibration_percentile']:g}"
    return method


def markdown_report(manifest: dict) -> str:
    """A short markdown report: one row per artifact, then what to do on the device."""
    rows = []
    for a in manifest["artifacts"]:
        drop = a["float_top1"] - a["top1"]
        rows.append([a["path"], a["backend"], a["precision"], _size(a), f"{a['top1']:.2f}",
                     f"{drop:+.2f}", "identical" if a["sqnr_db"] is None else f"{a['sqnr_db']:.1f}", _calibration(a) or "-",
                     ", ".join(a["float_layers"]) or "-"])
    calib = manifest["calibration"]
    used = sorted({_calibration(a) for a in manifest["artifacts"] if a.get("calibration_method")})
    methods = ", ".join(used) if used else calib["method"]  # what the int8 artifacts shipped with
    calibration = (f"Calibration: {methods} on {calib['size']} images ({calib['source']})." if calib["size"]
                   else "No calibration (no int8 artifact).")
    lines = [f"# {manifest['model']['name']} for {manifest['target']}", "",
             f"Float top-1 on the held-out split: {manifest['float_top1']:.2f}%. {calibration}", "",
             table(["artifact", "backend", "precision", "size", "top-1 %", "drop", "SQNR dB", "calibration", "kept float"], rows,
                   markdown=True), ""]
    for w in manifest.get("warnings") or []:
        lines += [f"**Warning**: the float model: {w}", ""]
    failed = manifest.get("failed") or []
    if failed:
        lines += ["**Incomplete build**: these artifacts were not built:", ""]
        for f in failed:
            lines.append(f"- {f['backend']} {f['precision']}: {f['reason']}")
            lines += [f"  - {line}" for line in _diagnosis_lines(f.get("diagnosis"))]
        lines.append("")
    for a in manifest["artifacts"]:
        for line in [*a.get("notes", []), *a.get("device_steps", [])]:
            lines.append(f"- {a['path']}: {line}")
    return "\n".join(lines).rstrip() + "\n"


def _diagnosis_lines(diagnosis: dict | None) -> list[str]:
    """Where a failed int8 artifact departs from float (``edgecn.quantize.diagnose``), for people."""
    if not diagnosis:
        return []
    from edgecn.quantize.diagnose import Site, summary

    sites = [Site(**s) for s in diagnosis["int8_sites"]]
    return ["where int8 departs from float (logit SQNR with one activation site in int8):",
            *summary(diagnosis["weights_only_sqnr_db"], sites)]
