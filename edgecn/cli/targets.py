"""`edgecn targets`: list the deployment targets (one TOML file each) and the backends."""

from __future__ import annotations

from edgecn.cli import subcommand


@subcommand("targets", help="list deployment targets (targets/*.toml) with their backends and precisions")
def configure(p):
    p.add_argument("--backends", action="store_true", help="list the registered backends instead")
    p.add_argument("--dir", default=None, help="read target files from this folder")
    p.set_defaults(run=run)


def run(args):
    from edgecn.report import table

    if args.backends:
        from edgecn.backends import BACKENDS

        print(table(["backend", "suffix", "precisions"],
                    [[n, b.suffix, ", ".join(b.precisions)] for n, b in BACKENDS.items()]))
        return 0
    from edgecn.targets import load_targets

    rows = [[t.name, ", ".join(t.aliases), ", ".join(t.backends), ", ".join(t.precisions), t.cpu, t.description]
            for _, t in load_targets(args.dir).items()]
    print(table(["target", "aliases", "backends", "precisions", "cpu", "description"], rows))
    return 0
