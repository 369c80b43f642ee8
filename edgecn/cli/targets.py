"""`edgecn targets`: list the deployment targets (one TOML file each) and the backends."""

from __future__ import annotations

from edgecn.cli import subcommand


@subcommand("targets", help="list deployment targets (one TOML file each) with their backends and precisions")
def configure(p):
    p.epilog = ("The targets shipped with edgecn live inside the package (the checkout's targets/ links there); "
                "set EDGECN_TARGETS_DIR or pass --dir to use a folder of your own target files.")
    p.add_argument("--backends", action="store_true", help="list the registered backends instead")
    p.add_argument("--dir", default=None, help="read target files from this folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args):
    from edgecn.report import table

    if args.backends:
        from edgecn.backends import BACKENDS

        print(table(["backend", "suffix", "precisions"],
                    [[n, b.suffix, ", ".join(b.precisions)] for n, b in BACKENDS.items()]))
        return 0
    import json

    from edgecn.errors import EdgecnError
    from edgecn.targets import load_targets, targets_dir

    targets = [t for _, t in load_targets(args.dir).items()]
    if not targets:
        raise EdgecnError(f"no target files (*.toml) in {str(args.dir or targets_dir())!r}",
                          "pass --dir (or EDGECN_TARGETS_DIR) a folder of target files, or unset it for the shipped ones")
    if args.json:
        print(json.dumps([{"name": t.name, "aliases": list(t.aliases), "backends": list(t.backends),
                           "precisions": list(t.precisions), "cpu": t.cpu, "description": t.description}
                          for t in targets], indent=2))
        return 0
    rows = [[t.name, ", ".join(t.aliases), ", ".join(t.backends), ", ".join(t.precisions), t.cpu, t.description]
            for t in targets]
    print(table(["target", "aliases", "backends", "precisions", "cpu", "description"], rows))
    return 0
