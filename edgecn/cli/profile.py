"""`edgecn profile`: time artifacts on this device or over ssh; delegates to the torch-free ``edgecn.runner``."""

from __future__ import annotations

from edgecn.cli import subcommand


@subcommand("profile", help="profile .tflite/.pte/.onnx/TensorRT artifacts: latency, real-time pacing, threads, ops, top-1")
def configure(p):
    from edgecn.runner.cli import add_arguments

    add_arguments(p)
    p.set_defaults(run=run)


def run(args):
    from edgecn.runner.cli import run as run_profile

    return run_profile(args)
