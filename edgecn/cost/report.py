"""``edgecn tune``'s table: each layer's chosen form and time, and predicted vs measured latency."""

from __future__ import annotations

from edgecn.runner.report import table


def render(result) -> str:
    doc = result.to_json()
    rows = []
    for r in doc["segments"]:
        gain = (f"{r['target_ms'] / r['ms']:.2f}x" if r["ms"] and r["target_ms"] else None)
        rows.append([r["end"], _short(r["form"]), r["variant"], _ms(r["ms"]), _ms(r["target_ms"]), gain, r["forms_timed"]])
    machine = doc["machine"]
    lines = [f"{doc['backend']} int8, {doc['threads']} thread(s), on {machine.get('cpu') or 'unknown CPU'} "
             f"({' '.join(machine.get('isa') or []) or 'no ISA flags read'}); "
             f"runtime {', '.join(f'{k} {v}' for k, v in doc['runtime'].items()) or 'unknown'}",
             "",
             table(["layer (ends at)", "chosen form", "variant", "ms", "target's ms", "gain", "forms"], rows),
             ""]
    lat = doc["latency_ms"]
    lat_rows = [[name, _ms(v["predicted"]), _ms(v["measured"]),
                 None if v["error_pct"] is None else f"{v['error_pct']:+.1f}%"]
                for name, v in (("tuned lowering", lat["tuned"]), ("target's lowering", lat["target"]))]
    lines.append(table(["whole model", "predicted ms", "measured ms", "error"], lat_rows))
    if lat.get("rounds"):
        lines.append(f"both models built and timed in {lat['rounds']} interleaved rounds beside the segments and "
                     f"neighbour pairs they are predicted from; error: the median of the per-round errors")
    t, g = lat["tuned"]["measured"], lat["target"]["measured"]
    if t and g:
        lines.append(f"tuned vs target's lowering, measured side by side: {g / t:.2f}x")
        if t > g:
            lines.append("the tuned lowering measured SLOWER than the target's rules: its layers, timed alone, do not add "
                         "up to this model here (see the prediction errors); keep the target's rules and do not name "
                         "this table in the target file")
    if doc["failed_forms"]:
        lines.append(f"{len(doc['failed_forms'])} form(s) could not be compiled alone and were not candidates "
                     f"(first: {next(iter(doc['failed_forms'].values()))})")
    return "\n".join(lines)


def _ms(v) -> str | None:
    return None if v is None else f"{v:.3f}"


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."
