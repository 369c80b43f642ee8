"""`edgecn build`: compile, quantize and validate a model for one target."""

from __future__ import annotations

import sys

from edgecn.cli import subcommand
from edgecn.limits import number


@subcommand("build", help="build validated deployable artifacts (.pte, .tflite, TensorRT ONNX) for a target")
def configure(p):
    p.add_argument("--target", required=True, help="target name or alias (see `edgecn targets`), or a .toml file")
    p.add_argument("--checkpoint", default=None, help="trained checkpoint (default: train a small CondenseNet first)")
    p.add_argument("--data", default=None,
                   help="data the model was trained on: 'digits' or a folder (default: what the checkpoint records; "
                        "digits when training the default model)")
    p.add_argument("--out", default="build", help="folder the build folder <model>-<target>/ goes in (default: build)")
    p.add_argument("--epochs", type=number(int, 1, 10_000), default=12, help="epochs when training the default model (default 12, as `edgecn train`)")
    p.add_argument("--input-size", type=number(int, 8, 4096), default=None, help="input side when training the default model (default: 16 for digits, else the model's own)")
    p.add_argument("--calibration", default=None, help="calibration recipe name or .toml (default: the target's)")
    p.add_argument("--calibration-images", default=None, help="folder of images to calibrate on")
    p.add_argument("--calibration-size", type=number(int, 1, 100_000), default=None, help="calibration images drawn from the training data")
    p.add_argument("--calibration-method", default=None, choices=["minmax", "percentile", "entropy"],
                   help="how int8 ranges are chosen from calibration data (default: the recipe's; when an int8 "
                        "artifact loses more than --max-drop, the others are tried unless this is given)")
    p.add_argument("--max-drop", type=number(float, 0, 100), default=1.0, help="most top-1 points an int8 artifact may lose (default 1.0)")
    p.add_argument("--time-limit", type=number(float, 0, 864_000), default=600.0, metavar="SECONDS",
                   help="start no step of an int8 artifact's fidelity search (other calibrations, layers kept in "
                        "float) that would end the build past this many seconds; a step is priced at the artifact's "
                        "first compile (default: %(default)g)")
    p.add_argument("--lowering", default="target", choices=["target", "auto", "none"],
                   help="rewrites: the target's choices, timed per backend (auto), or none")
    p.add_argument("--precision", action="append", default=None, help="only this precision (repeatable)")
    p.add_argument("--backend", action="append", default=None,
                   help="only this of the target's backends, e.g. tflite (repeatable; default: all of them)")
    p.add_argument("--no-cache", action="store_true", help="recalibrate instead of reusing cached ranges")
    p.add_argument("--quiet", action="store_true", help="print only the report")
    p.add_argument("--verbose", action="store_true",
                   help="show the converters' and runtimes' own output (default: written to build.log in the build folder)")
    p.epilog = ("An artifact that fails (accuracy lost, a backend rule broken, a converter error) is listed with "
                "its reason in report.md and manifest.json, the others are written, and the exit status is 3.")
    p.set_defaults(run=run)


def run(args):
    from edgecn.build import BuildConfig, build
    from edgecn.errors import INCOMPLETE_EXIT

    cfg = BuildConfig(target=args.target, checkpoint=args.checkpoint, data=args.data, out_dir=args.out,
                      epochs=args.epochs, input_size=args.input_size, calibration=args.calibration, calibration_images=args.calibration_images,
                      calibration_size=args.calibration_size, method=args.calibration_method, max_drop=args.max_drop, time_limit_s=args.time_limit,
                      lowering=args.lowering, precisions=tuple(args.precision) if args.precision else None,
                      backends=tuple(args.backend) if args.backend else None,
                      use_cache=not args.no_cache, progress=not args.quiet, tool_logs=args.verbose)
    result = build(cfg)
    if args.quiet:
        print(result.report)
    log = "" if args.verbose else f" (converter and runtime logs: {result.folder / 'build.log'})"
    print(f"wrote {result.folder} in {result.seconds:.0f} s{log}")
    if not result.complete:
        names = ", ".join(f"{f['backend']} {f['precision']}" for f in result.failed)
        print(f"edgecn build: incomplete: {len(result.failed)} artifact(s) not built ({names}); "
              f"the reasons are in {result.folder / 'report.md'} and manifest.json", file=sys.stderr)
        return INCOMPLETE_EXIT
    return 0
