"""`edgecn tune`: measure a cost table on the device and choose each layer's lowering from it."""

from __future__ import annotations

import json
from pathlib import Path

from edgecn.cli import subcommand
from edgecn.limits import number


@subcommand("tune", help="time every lowering form of each layer in the target's runtime and choose the fastest")
def configure(p):
    p.add_argument("--target", required=True, help="target name or alias (see `edgecn targets`), or a .toml file")
    p.add_argument("--backend", default=None, help="one of the target's backends (default: each of them)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", default=None, help="trained checkpoint (condensed on load)")
    src.add_argument("--model", default=None, help="a registered model with seeded weights (see `edgecn models`): "
                                                   "times do not depend on the weights")
    p.add_argument("--input-size", type=number(int, 8, 4096), default=None, help="input side for --model (default: the model's)")
    p.add_argument("--num-classes", type=number(int, 2, 100_000), default=None, help="classes for --model (default: the model's)")
    p.add_argument("--threads", type=number(int, 1, 1024), default=1, help="runtime threads while timing (default 1)")
    p.add_argument("--runs", type=number(int, 5, 100_000), default=100, help="timed runs per form (default 100)")
    p.add_argument("--rounds", type=number(int, 1, 100), default=1,
                   help="passes over all forms, each in the reverse order of the last; a form's time is the median "
                        "of its passes (default 1; 3 or more on a machine whose speed drifts)")
    p.add_argument("--table", default=None, metavar="JSON",
                   help="cost table to extend and write (default: the target's [lowering] cost_table, else "
                        "~/.cache/edgecn/costs/TARGET-BACKEND-Nt.json)")
    p.add_argument("--no-check", action="store_true", help="skip timing the whole model built both ways")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--remote", default=None, metavar="[ssh://]user@host[:port]",
                   help="time on this device over ssh (compile here, run there through edgecn's runner)")
    p.add_argument("--remote-python", default="python3", help="python on the remote device (default python3)")
    p.add_argument("--ssh-key", default=None, help="identity file for --remote")
    p.add_argument("--ssh-option", action="append", default=[], metavar="OPT", help="extra ssh -o option (repeatable)")
    p.add_argument("--accept-new-host-key", action="store_true",
                   help="trust the device's host key on first contact (ssh's StrictHostKeyChecking=accept-new); "
                        "a changed key is still refused")
    p.epilog = ("Each layer (segment between two points where the model's layers join) is lowered every way the "
                "target's rewrites allow, compiled alone to int8 and timed; the table keeps the times per runtime, "
                "CPU and thread count, so a second run only measures what is new. `edgecn build` uses the table "
                "the target names in [lowering] cost_table.")
    p.set_defaults(run=run)


def run(args):
    from edgecn.cost.api import tune_target

    results = tune_target(target=args.target, backend=args.backend, checkpoint=args.checkpoint, model=args.model,
                          input_size=args.input_size, num_classes=args.num_classes, threads=args.threads,
                          runs=args.runs, rounds=args.rounds, table=args.table, check=not args.no_check, remote=args.remote,
                          remote_python=args.remote_python, ssh_key=args.ssh_key,
                          ssh_options=tuple(args.ssh_option), say=(lambda s: None) if args.json else print,
                          accept_new_host_key=args.accept_new_host_key)
    if args.json:
        print(json.dumps([r.to_json() for r, _ in results], indent=1, allow_nan=False))
        return 0
    from edgecn.cost.report import render

    for result, path in results:
        print(render(result))
        print(f"cost table: {Path(path)}")
    return 0
