"""``python -m edgecn.runner`` / ``edgecn profile``: the command line over ``session.profile``.

Torch-free. The options become a ``session.ProfileRequest`` (the same object the Python API
takes); where each setting runs (this process, a child, a device) is decided there.
"""

from __future__ import annotations

import argparse
import json
import sys

from edgecn.errors import TERMINATED_EXIT, USER_ERROR_EXIT, EdgecnError, Terminated, raise_on_sigterm
from edgecn.fileio import writes_fail_past_size_limit
from edgecn.limits import number, numbers
from edgecn.runner import report
from edgecn.runner.session import STOP_WITH_INPUT, ProfileRequest, profile
from edgecn.terminal import STDOUT_CLOSED, safe_output

INCOMPLETE_EXIT = 3
"""Some artifacts or thread settings failed, the others were measured (as ``edgecn build``'s 3)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The profile options, shared by ``edgecn profile`` and ``python -m edgecn.runner``."""
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help=".tflite, .pte, .onnx, .engine or .plan files")
    p.add_argument("--runs", type=number(int, 1, 100_000_000), default=None,
                   help="timed inferences: exactly this many, or at least this many with --duration "
                        "(default: at least 50 and at least 1 s, at most 150 s, as LiteRT's benchmark_model)")
    p.add_argument("--duration", type=number(float, 0, 86_400, lo_open=True), default=None,
                   help="time for at least this many seconds")
    p.add_argument("--warmup", type=number(int, 0, 1_000_000), default=None,
                   help="untimed inferences after the first (default: at least 10 and at least 0.5 s)")
    p.add_argument("--threads", type=numbers(int, 1, 1024), default=None, help="thread count, or a comma list to sweep (1,2,4); one process each")
    p.add_argument("--fps", type=number(float, 0, 10_000, lo_open=True), default=None, help="real-time mode: frames arrive at this rate")
    p.add_argument("--json", action="store_true", help="print every figure and the environment as JSON")
    p.add_argument("--plot", default=None, metavar="PNG", help="write latency histogram and timeline")
    p.add_argument("--accuracy", action="store_true", help="report top-1 on labelled data (--data)")
    p.add_argument("--data", default=None, help="'digits' (the 359 held-out handwritten digits, shipped with edgecn) "
                                                "or a folder of images (one subfolder per class; copied to the device "
                                                "with --remote)")
    p.add_argument("--op-profile", action="store_true", help="per-op timings where the runtime offers them")
    p.add_argument("--force", action="store_true", help="profile even if the sha256 does not match the manifest")
    p.add_argument("--remote", default=None, metavar="[ssh://]user@host[:port]", help="run on a device over ssh")
    p.add_argument("--remote-python", default="python3",
                   help="python on the remote device (default: python3, or the first of ~/.venv, ~/venv, ~/edgecn "
                        "that has numpy and the artifacts' runtime)")
    p.add_argument("--ssh-key", default=None, help="identity file for --remote")
    p.add_argument("--ssh-option", action="append", default=[], metavar="OPT", help="extra ssh -o option (repeatable)")
    p.add_argument("--accept-new-host-key", action="store_true",
                   help="--remote: trust a device's host key the first time it is seen and record it in known_hosts "
                        "(ssh's StrictHostKeyChecking=accept-new); a changed key is still refused")
    p.add_argument("--batch", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(STOP_WITH_INPUT, action="store_true", help=argparse.SUPPRESS)
    # STOP_WITH_INPUT: a runner started by another process (a profile's child, the device side
    # of --remote) is handed a pipe as stdin that its starter never writes; when the starter is
    # gone (killed, even with SIGKILL, or its ssh connection dropped) the pipe closes and the
    # runner stops as on SIGTERM, stopping its own children, instead of running on unseen.
    # --batch: every artifact in this one process, one after another (one runtime, one thread
    # setting). For many small artifacts of one kind (edgecn tune's layers), where starting a
    # process per artifact costs more than timing it; peak memory is then the batch's.


def check_optional(args) -> None:
    """Fail before any work when an option needs a package this install lacks (not after the model loaded)."""
    import importlib.util

    needs = []
    if args.plot:
        needs.append(("matplotlib", "--plot", "pip install matplotlib, or drop --plot (use --json)"))
    if args.data and args.data != "digits" and not args.remote:
        needs.append(("PIL", "--data FOLDER", "pip install pillow"))
    for module, option, fix in needs:
        if importlib.util.find_spec(module) is None:
            raise EdgecnError(f"{option} needs {'Pillow' if module == 'PIL' else module}, which is not installed here",
                              fix)


def run(args) -> int:
    """Profile, then print a table or JSON (and a plot); returns the exit status."""
    check_optional(args)
    try:
        doc = profile(ProfileRequest.from_args(args))
    except KeyboardInterrupt as stop:  # what was measured before the stop is shown, then the stop goes on
        partial = getattr(stop, "partial_document", None)
        if partial is not None:
            print(json.dumps(partial, indent=1) if args.json else report.render(partial))
            print(f"edgecn profile: stopped after {len(partial['results'])} of {partial['planned']} artifact and "
                  "thread settings; shown above are those measured", file=sys.stderr)
        raise
    if args.plot:
        report.plot(doc, args.plot)
    print(json.dumps(doc, indent=1) if args.json else report.render(doc))
    if args.plot:  # stderr: stdout stays one JSON document with --json
        print(f"plot written to {args.plot}", file=sys.stderr)
    failed = [r for r in doc["results"] if r.get("error")]
    for r in failed:
        print(f"edgecn profile: {r['name']} ({r['threads']} threads) failed: {r['error']}", file=sys.stderr)
    return INCOMPLETE_EXIT if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edgecn.runner",
                                description="Profile edge artifacts (.tflite, .pte, .onnx, TensorRT engines) on this "
                                            "device, without torch.")
    add_arguments(p)
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return p


def main(argv: list[str] | None = None) -> int:
    with safe_output() as stdout_open:  # no control character from a device, file or name reaches the terminal
        if not stdout_open:
            print(f"edgecn profile: error: {EdgecnError(*STDOUT_CLOSED).message}", file=sys.stderr)
            return USER_ERROR_EXIT
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    raise_on_sigterm()
    writes_fail_past_size_limit()
    if args.stop_with_input:
        stop_when_input_closes()
    try:
        return run(args)
    except EdgecnError as e:
        if args.debug:
            raise
        print(f"edgecn profile: error: {e.message}", file=sys.stderr)
        return USER_ERROR_EXIT
    except Terminated:
        print("edgecn profile: terminated (SIGTERM)", file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print("edgecn profile: interrupted", file=sys.stderr)
        return 130


def stop_when_input_closes(grace_s: float = 10.0) -> None:
    """Watch stdin in a thread; at its end, SIGTERM this process (its clean-up runs: child
    processes are stopped, private copies removed), and leave after ``grace_s`` regardless."""
    import os
    import signal
    import threading

    def watch():
        try:
            while os.read(0, 1 << 16):
                pass
        except OSError:
            pass
        backstop = threading.Timer(grace_s, os._exit, (TERMINATED_EXIT,))
        backstop.daemon = True
        backstop.start()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="edgecn-stop-with-input", daemon=True).start()
