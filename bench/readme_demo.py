"""The README's demo table, made from a demo run's own record, so the two cannot drift.

Usage:
    python bench/readme_demo.py build/condensenet-light-raspberry-pi-5/demo.json   # after `make demo`

Copies the record to bench/results/demo.json and rewrites the README between the demo markers.
``tests/core/test_readme_demo.py`` checks that the README's block is what this script makes
from bench/results/demo.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "bench" / "results" / "demo.json"
BEGIN = "<!-- demo table: made by bench/readme_demo.py from bench/results/demo.json; do not edit by hand -->"
END = "<!-- end of demo table -->"


def _size(n: int | None) -> str:
    return f"{n / 1024:.0f} KB" if n else "-"


def block(record: dict) -> str:
    """The README text for one demo record: where it ran, then one row per artifact."""
    manifest, profile = record["manifest"], record["profile"]
    env = profile["environment"]
    model = manifest["model"]
    timed = {(r["name"], r["threads"]): r for r in profile["results"] if not r.get("error")}
    threads = sorted({t for _, t in timed})
    held = next((r["accuracy"]["samples"] for r in timed.values() if r.get("accuracy")), None)
    lines = [f"What `make demo` printed on `{env['cpu']}` ({env['cores']} cores, ISA {' '.join(env.get('isa') or []) or '-'}): "
             f"{model.get('name')} for `{manifest['target']}`, {manifest.get('data')} at "
             f"{model.get('input_size')}x{model.get('input_size')}, float top-1 {manifest['float_top1']:.2f}% "
             f"on the {held} held-out images; latency measured here as the demo does ({profile['plan']}).",
             "",
             "| artifact | size (zipped) | top-1 | logit SQNR vs float | "
             + " | ".join(f"median ms, {t} thread{'s' if t > 1 else ''}" for t in threads) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(threads)]
    for a in manifest["artifacts"]:
        cells = [f"{timed[(a['path'], t)]['latency_ms']['median']:.3f}" if (a["path"], t) in timed else "-"
                 for t in threads]
        sqnr = f"{a['sqnr_db']:.1f} dB" if a.get("sqnr_db") is not None else "-"
        lines.append(f"| {a['path']} | {_size(a.get('size_bytes'))} ({_size(a.get('size_zip_bytes'))}) | "
                     f"{a['top1']:.2f}% | {sqnr} | " + " | ".join(cells) + " |")
    lines.append("")
    seen = set()
    for a in manifest["artifacts"]:  # how each backend's graph came out (the int8 one says the same)
        if a["backend"] in seen:
            continue
        seen.add(a["backend"])
        gathers = sum(v for k, v in (a.get("ops") or {}).items() if "GATHER" in k or "index_select" in k)
        shape = (f"{a['xnnpack_partitions']} XNNPACK partitions" if a.get("xnnpack_partitions") is not None
                 else f"{a['delegated_share']:.0%} of its ops delegated to XNNPACK" if a.get("delegated_share") is not None
                 else "")
        lines.append(f"- `{a['backend']}`: {shape}{', ' if shape else ''}{gathers} gather op(s) left; "
                     f"rewrites {', '.join(a.get('rewrites') or []) or 'none'}.")
    return "\n".join(lines)


def replace_block(readme: str, text: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the demo markers ({BEGIN!r} ... {END!r})")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{text}\n{END}{tail}"


def main(argv: list[str]) -> int:
    if argv:  # the record, less the per-run samples (the table needs the statistics only)
        record = json.loads(Path(argv[0]).read_text())
        for r in record["profile"]["results"]:
            for key in ("samples_ms", "start_offsets_s", "warmup_ms"):
                r.pop(key, None)
        RECORD.write_text(json.dumps(record, indent=1) + "\n")
    record = json.loads(RECORD.read_text())
    readme = ROOT / "README.md"
    readme.write_text(replace_block(readme.read_text(), block(record)))
    print(f"README.md demo table made from {RECORD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
