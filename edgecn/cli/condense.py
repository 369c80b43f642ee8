"""`edgecn condense`: turn a trained checkpoint into its deployable (condensed) form."""

from __future__ import annotations

import json

from edgecn.cli import subcommand


@subcommand("condense", help="condense a trained CondenseNet checkpoint and prove the result computes the same")
def configure(p):
    p.add_argument("checkpoint", help="training-form checkpoint (e.g. runs/NAME/final.pt)")
    p.add_argument("-o", "--out", default=None, help="output checkpoint (default: CHECKPOINT's stem + '-condensed.pt')")
    p.add_argument("--data", default=None,
                   help="data for the held-out check (default: the data the checkpoint was trained on)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args):
    from edgecn.train import condense_checkpoint

    report = condense_checkpoint(args.checkpoint, args.out, data=args.data)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_report(report))
    return 0


def format_report(report: dict) -> str:
    """The before/after table and the verification lines."""
    from edgecn.report import table

    b, a = report["before"], report["after"]
    rows = [[label, _n(b[k]), _n(a[k]), f"{b[k] / a[k]:.2f}x"]
            for label, k in (("params", "params"), ("MACs", "macs"), ("weights bytes", "weight_bytes"))]
    v = report["verification"]
    lines = [table(["", "trained", "condensed", "smaller by"], rows), "",
             f"max |logit difference|: {v['max_abs_diff_random']:.2e} on {v['random_inputs']} random inputs"]
    if v.get("heldout_images"):
        lines.append(f"held-out ({v['heldout_images']} images): max |logit difference| {v['max_abs_diff_heldout']:.2e}, "
                     f"top-1 {v['heldout_top1_before'] * 100:.2f}% -> {v['heldout_top1_after'] * 100:.2f}%")
    lines.append(f"condensed checkpoint: {report['checkpoint']}")
    return "\n".join(lines)


def _n(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"
