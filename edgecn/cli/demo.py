"""`edgecn demo`: the main job end to end on the embedded default data.

Trains a small CondenseNet on scikit-learn's handwritten digits (unless a checkpoint is
given), condenses it, builds and validates the target's artifacts, then profiles each
artifact the way `edgecn profile` would on the device.
"""

from __future__ import annotations

from edgecn.cli import subcommand
from edgecn.limits import number, numbers


@subcommand("demo", help="train, condense, build and profile a small CondenseNet on the embedded digits data")
def configure(p):
    p.add_argument("--target", default="rpi5", help="target name or alias (default rpi5; see `edgecn targets`)")
    p.add_argument("--checkpoint", default=None, help="start from this checkpoint instead of training")
    p.add_argument("--out", default="build", help="parent folder of the build (default build/)")
    p.add_argument("--runs", type=number(int, 1, 10_000_000), default=200, help="timed inferences per artifact (default 200)")
    p.add_argument("--threads", type=numbers(int, 1, 1024), default=[1], help="profiling thread count or comma list (default 1)")
    p.set_defaults(run=run)


def run(args):
    import json

    from edgecn.build import BuildConfig, build
    from edgecn.fileio import atomic_write_text
    from edgecn.runner import report
    from edgecn.runner.session import ProfileRequest, profile

    result = build(BuildConfig(target=args.target, checkpoint=args.checkpoint, out_dir=args.out))
    runnable = [str(result.folder / a["path"]) for a in result.artifacts
                if a["path"].endswith((".tflite", ".pte", ".onnx"))]
    print(f"\nProfiling {len(runnable)} artifacts from {result.folder} on this machine "
          f"(on the device: `edgecn profile {result.folder}/*.tflite`):\n")
    doc = profile(ProfileRequest(tuple(runnable), threads=tuple(args.threads), runs=args.runs, accuracy=True,
                                 data="digits"))
    print(report.render(doc))
    # What the README's demo table is made from (bench/readme_demo.py), so the table cannot drift from a run.
    manifest = json.loads((result.folder / "manifest.json").read_text())
    record = result.folder / "demo.json"
    atomic_write_text(record, json.dumps({"manifest": manifest, "profile": doc}, indent=1))
    print(f"\ndemo record: {record}")
    return 3 if any(r.get("error") for r in doc["results"]) else 0
