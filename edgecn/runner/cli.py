"""``python -m edgecn.runner`` / ``edgecn profile``: argument parsing and the process plan.

Torch-free. One artifact at one thread setting runs in this process. Several artifacts or
thread settings run one subprocess each (runtimes' thread pools are sized once per process,
and two runtimes in one process fight), and their JSON is merged. The hidden ``--batch``
(``edgecn tune``) runs many artifacts of one kind at one setting in this process instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from edgecn.limits import number, numbers
import edgecn
from edgecn.errors import TERMINATED_EXIT, USER_ERROR_EXIT, EdgecnError, Terminated, raise_on_sigterm
from edgecn.runner import report, sysinfo
from edgecn.runner.measure import Plan

FORMAT = "edgecn-profile"
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
    p.add_argument("--data", default=None, help="'digits' (sklearn's) or a folder of images (one subfolder per class; "
                                                "copied to the device with --remote)")
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
    # --batch: every artifact in this one process, one after another (one runtime, one thread
    # setting). For many small artifacts of one kind (edgecn tune's layers), where starting a
    # process per artifact costs more than timing it; peak memory is then the batch's.


def parse_threads(values: list[int] | None) -> list[int]:
    """The thread settings to profile (checked by ``--threads``'s type); default: every core this process may use.

    Always a number, passed to the runtime and reported: "the runtime's default" differs between
    runtimes (LiteRT, ExecuTorch and onnxruntime each pick their own) and says nothing in a table.
    """
    return list(values) if values else [sysinfo.usable_cores()]


def plan_of(args) -> Plan:
    """``--runs`` / ``--duration`` / ``--warmup`` as given; what is not given follows benchmark_model."""
    if args.runs is None and args.duration is None:
        runs, least, most = 50, 1.0, 150.0
    else:
        runs, least, most = args.runs or 1, args.duration or 0.0, float("inf")
    warmup, warmup_s = (10, 0.5) if args.warmup is None else (args.warmup, 0.0)
    return Plan(runs=runs, min_seconds=least, max_seconds=most, warmup=warmup, warmup_seconds=warmup_s, fps=args.fps)


def check_optional(args) -> None:
    """Fail before any work when an option needs a package this install lacks (not after the model loaded)."""
    import importlib.util

    needs = []
    if args.plot:
        needs.append(("matplotlib", "--plot", "pip install matplotlib, or drop --plot (use --json)"))
    if args.data and args.data != "digits" and not args.remote:
        needs.append(("PIL", "--data FOLDER", "pip install pillow"))
    if args.data == "digits" and not args.remote:
        needs.append(("sklearn", "--data digits", "pip install scikit-learn, or pass --data FOLDER"))
    for module, option, fix in needs:
        if importlib.util.find_spec(module) is None:
            raise EdgecnError(f"{option} needs {'Pillow' if module == 'PIL' else module}, which is not installed here",
                              fix)


def run(args) -> int:
    """Profile, then print a table or JSON (and a plot); returns the exit status."""
    check_optional(args)
    if args.remote:
        from edgecn.runner.remote import profile_remote

        doc = profile_remote(args)
    else:
        doc = profile_local(args)
    if args.plot:
        report.plot(doc, args.plot)
    print(json.dumps(doc, indent=1) if args.json else report.render(doc))
    if args.plot:  # stderr: stdout stays one JSON document with --json
        print(f"plot written to {args.plot}", file=sys.stderr)
    failed = [r for r in doc["results"] if r.get("error")]
    for r in failed:
        print(f"edgecn profile: {r['name']} ({r['threads']} threads) failed: {r['error']}", file=sys.stderr)
    return INCOMPLETE_EXIT if failed else 0


def profile_local(args) -> dict:
    from edgecn.runner.check import check_artifact
    from edgecn.runner.profile import Options, profile_artifact, verify

    plan = plan_of(args)
    threads = parse_threads(args.threads)
    if args.op_profile and args.fps:
        raise EdgecnError("--op-profile and --fps do not mix", "profile ops in a separate run")
    for a in args.artifacts:  # fail fast, before any subprocess starts
        verify(Path(a), args.force)  # the sha first: a mismatch says more than a structural complaint
        check_artifact(a)
    if any(Path(a).suffix.lower() == ".pte" for a in args.artifacts):
        from edgecn.runner.pte import native_binary

        native_binary()  # built here, once, before child processes could race to build it
    combos = [(a, t) for a in args.artifacts for t in threads]
    if getattr(args, "batch", False):
        suffixes = {Path(a).suffix.lower() for a in args.artifacts}
        if len(threads) != 1 or len(suffixes) != 1:
            raise EdgecnError("--batch runs one kind of artifact at one thread setting",
                              "give artifacts of one suffix and one --threads value")
        opts = Options(plan=plan, threads=threads[0], force=args.force, keep_samples=False)
        results = [profile_artifact(a, opts) for a in args.artifacts]
    elif len(combos) == 1:
        opts = Options(plan=plan, threads=threads[0], accuracy=args.accuracy, data=args.data,
                       op_profile=args.op_profile, force=args.force)
        results = [profile_artifact(args.artifacts[0], opts)]
    else:
        results = [r for a, t in combos for r in _child(args, a, t)]
    return {"format": FORMAT, "version": 1, "edgecn": edgecn.__version__, "environment": sysinfo.environment(),
            "plan": plan.describe(), "results": results}


def _child(args, artifact: str, threads: int | None) -> list[dict]:
    """Profile one artifact at one thread setting in a fresh python process."""
    argv = [sys.executable, "-m", "edgecn.runner", str(artifact), "--json"]
    for flag, value in (("--runs", args.runs), ("--duration", args.duration), ("--fps", args.fps), ("--warmup", args.warmup),
                        ("--threads", threads), ("--data", args.data)):
        if value is not None:
            argv += [flag, str(value)]
    argv += [f for f, on in (("--accuracy", args.accuracy), ("--op-profile", args.op_profile), ("--force", args.force)) if on]
    root = str(Path(edgecn.__file__).resolve().parent.parent)  # a folder or the runner zip on a device
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # recorded, and the others go on: one bad artifact does not lose the rest
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        last = last.split("error: ", 1)[1] if "edgecn profile: error: " in last else last
        return [{"artifact": str(artifact), "name": Path(artifact).name, "threads": threads,
                 "error": f"exit {proc.returncode}: {last}"}]
    return json.loads(proc.stdout)["results"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edgecn.runner",
                                description="Profile edge artifacts (.tflite, .pte, .onnx, TensorRT engines) on this "
                                            "device, without torch.")
    add_arguments(p)
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise_on_sigterm()
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
