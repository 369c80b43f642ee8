"""`edgecn condense`: turn a trained checkpoint into its deployable (condensed) form.

Models with learned group convs (CondenseNet) are condensed; all others (SqueezeNet, an
already condensed model) get Deep Compression: pruning, weight sharing, Huffman coding.
"""

from __future__ import annotations

import json

from edgecn.cli import subcommand
from edgecn.limits import number


DEEP_OPTIONS = ("sparsity", "sensitivity", "uniform", "conv_bits", "fc_bits", "epochs", "config")


@subcommand("condense", help="condense a CondenseNet checkpoint, or deep-compress any other model (SqueezeNet)")
def configure(p):
    p.add_argument("checkpoint", help="training-form checkpoint (e.g. runs/NAME/final.pt)")
    p.add_argument("-o", "--out", default=None, help="output checkpoint (default: CHECKPOINT's stem + "
                   "'-condensed.pt', or '-compressed.pt' plus its '.edc' compressed weight file)")
    p.add_argument("--data", default=None,
                   help="data for the held-out check (default: the data the checkpoint was trained on)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    g = p.add_argument_group("deep compression (models without learned group convs)")
    g.add_argument("--sparsity", type=number(float, 0, 0.999), default=None, help="fraction of each layer's weights to prune "
                   "(with --sensitivity: the most any layer is pruned)")
    g.add_argument("--sensitivity", type=number(float, 0, 100), default=None,
                   help="per-layer sparsity from a sensitivity scan: top-1 points each layer may cost")
    g.add_argument("--uniform", action="store_true", default=None,
                   help="no sensitivity scan: prune every layer to --sparsity")
    g.add_argument("--conv-bits", type=number(int, 1, 8), default=None, help="codebook bits of conv layers (1..8)")
    g.add_argument("--fc-bits", type=number(int, 1, 8), default=None, help="codebook bits of the classifier (1..8)")
    g.add_argument("--epochs", type=number(int, 0, 10_000), default=None, help="fine-tuning epochs per pruning round and for the codebooks")
    g.add_argument("--config", default=None, help="TOML file with a [deep_compression] table (flags override it)")
    p.set_defaults(run=run)


def run(args):
    from edgecn.condense import condense_checkpoint

    result = condense_checkpoint(args.checkpoint, args.out, config=_config(args), data=args.data,
                                 progress=not args.json)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if result["method"] == "condensing":
        print(format_report(result))
        return 0
    from edgecn.compress import CompressionReport, format_report as format_compression

    print(format_compression(CompressionReport.from_dict(result["report"])))
    sizes = result["sizes"]
    print(f"compressed weights: {result['compressed']} ({sizes['raw']:,} bytes, {sizes['zip']:,} zipped)")
    print(f"checkpoint for `edgecn build --checkpoint`: {result['checkpoint']}")
    return 0


def _config(args):
    """None (the model decides) unless a deep-compression option was given."""
    from edgecn.compress import DeepCompressionConfig
    from edgecn.errors import EdgecnError

    if not args.config and all(getattr(args, name) is None for name in DEEP_OPTIONS):
        return None
    base = DeepCompressionConfig.from_toml(args.config).to_dict() if args.config else {}
    flags = {"sparsity": args.sparsity, "sensitivity": args.sensitivity, "conv_bits": args.conv_bits,
             "fc_bits": args.fc_bits, "prune_epochs": args.epochs, "share_epochs": args.epochs}
    chosen = {k: v for k, v in flags.items() if v is not None}
    if args.uniform:
        if args.sensitivity is not None:
            raise EdgecnError("--uniform and --sensitivity contradict each other", "pass only one of them")
        chosen["sensitivity"] = None
    return DeepCompressionConfig.from_dict({**base, **chosen})


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
                     f"top-1 {v['heldout_top1_before']:.2f}% -> {v['heldout_top1_after']:.2f}%")
    lines.append(f"condensed checkpoint: {report['checkpoint']}")
    return "\n".join(lines)


def _n(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"
