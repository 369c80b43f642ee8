"""Plain-text tables for the terminal and markdown reports."""

from __future__ import annotations


def table(headers: list[str], rows: list[list], markdown: bool = False) -> str:
    """Align ``rows`` under ``headers``; numbers right-aligned. ``markdown`` gives a pipe table."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_num(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(headers))]

    def fmt(row):
        parts = [c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric)]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    if markdown:
        sep = "|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric)) + "|"
    else:
        sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), sep] + [fmt(r) for r in cells[1:]])


def _is_num(s: str) -> bool:
    s = s.strip().rstrip("%xMKGms").replace(",", "").replace("+", "").replace("-", "", 1)
    try:
        float(s)
        return True
    except ValueError:
        return s == ""
