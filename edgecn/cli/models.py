"""`edgecn models`: list the registered models with parameters and multiply-adds."""

from __future__ import annotations

import json

from edgecn.cli import subcommand
from edgecn.errors import EdgecnError
from edgecn.limits import number


@subcommand("models", help="list models with parameters and multiply-adds (training and condensed form)")
def configure(p):
    p.add_argument("--input-size", type=number(int, 8, 4096), default=None, help="input side in pixels (default: each model's own, 32 or 224)")
    p.add_argument("--num-classes", type=number(int, 1, 100_000), default=None, help="output classes (default: each model's own, 10 or 1000)")
    p.add_argument("--family", default=None, help="only this family (condensenet, squeezenet, densenet)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--wide", action="store_true", help="add each model's description (wider than 100 columns)")
    p.set_defaults(run=run)


def run(args):
    from edgecn.models import MODELS
    from edgecn.models.summary import summarize

    families = sorted({MODELS.get(n).family for n in MODELS.names()})
    if args.family is not None and args.family not in families:
        raise EdgecnError(f"unknown model family {args.family!r}", f"use one of {', '.join(families)}")
    rows = [summarize(name, args.num_classes, args.input_size) for name in MODELS.names()
            if args.family is None or MODELS.get(name).family == args.family]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from edgecn.report import table

    headers = ["model", "input", "classes", "params", "MACs", "condensed params", "condensed MACs"]
    cells = [[r["name"], f"{r['input_size']}x{r['input_size']}", r["num_classes"], _m(r["params"]), _m(r["macs"]),
              _m(r.get("condensed_params")), _m(r.get("condensed_macs"))] for r in rows]
    if args.wide:
        headers.append("description")
        for row, r in zip(cells, rows):
            row.append(r["description"])
    print(table(headers, cells))
    return 0


def _m(n):
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"
