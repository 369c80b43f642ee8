"""Profiling as a Python API: one frozen request, one ``profile(request)``, one argv form.

Torch-free. ``edgecn profile``, ``python -m edgecn.runner``, ``edgecn demo`` and ``edgecn
tune``'s timing all describe what to measure as a ``ProfileRequest`` and call ``profile``::

    from edgecn.runner.session import ProfileRequest, Remote, profile

    doc = profile(ProfileRequest(("model-int8.tflite",), threads=(1, 2), runs=200))
    doc = profile(ProfileRequest(("model-int8.pte",), remote=Remote("pi@raspberrypi.local")))

The request crosses a process or device boundary in exactly one form, ``to_argv()``: the
options of ``python -m edgecn.runner``, used for the per-setting child processes here and for
the runner on the device.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from edgecn.errors import EdgecnError
from edgecn.runner.measure import Plan


@dataclasses.dataclass(frozen=True)
class Remote:
    """Where ``--remote`` runs: a device reached over ssh, and the python there."""

    url: str
    python: str = "python3"
    ssh_key: str | None = None
    ssh_options: tuple[str, ...] = ()
    accept_new_host_key: bool = False


@dataclasses.dataclass(frozen=True)
class ProfileRequest:
    """What to measure: the artifacts, the thread settings, how long, and what else.

    ``runs``/``duration``/``warmup`` left None follow LiteRT's benchmark_model (see ``plan``).
    ``threads`` None: every core this process may use. ``batch``: every artifact in one process
    at one setting (for many small artifacts of one kind, as ``edgecn tune`` times them).
    """

    artifacts: tuple[str, ...]
    threads: tuple[int, ...] | None = None
    runs: int | None = None
    duration: float | None = None
    warmup: int | None = None
    fps: float | None = None
    accuracy: bool = False
    data: str | None = None
    op_profile: bool = False
    force: bool = False
    batch: bool = False
    keep_samples: bool = True
    remote: Remote | None = None

    def __post_init__(self):
        object.__setattr__(self, "artifacts", tuple(str(a) for a in self.artifacts))
        if self.threads is not None:
            object.__setattr__(self, "threads", tuple(int(t) for t in self.threads))
        if not self.artifacts:
            raise EdgecnError("nothing to profile", "pass at least one artifact")
        if self.op_profile and self.fps:
            raise EdgecnError("--op-profile and --fps do not mix", "profile ops in a separate run")

    @classmethod
    def from_args(cls, args: Any) -> "ProfileRequest":
        """The request the command line (``edgecn profile`` / ``python -m edgecn.runner``) describes."""
        remote = (Remote(args.remote, args.remote_python, args.ssh_key, tuple(args.ssh_option),
                         bool(getattr(args, "accept_new_host_key", False))) if args.remote else None)
        return cls(tuple(args.artifacts), tuple(args.threads) if args.threads else None, args.runs, args.duration,
                   args.warmup, args.fps, args.accuracy, args.data, args.op_profile, args.force,
                   bool(getattr(args, "batch", False)), True, remote)

    def plan(self) -> Plan:
        """``runs`` / ``duration`` / ``warmup`` as given; what is not given follows benchmark_model."""
        if self.runs is None and self.duration is None:
            runs, least, most = 50, 1.0, 150.0
        else:
            runs, least, most = self.runs or 1, self.duration or 0.0, float("inf")
        warmup, warmup_s = (10, 0.5) if self.warmup is None else (self.warmup, 0.0)
        return Plan(runs=runs, min_seconds=least, max_seconds=most, warmup=warmup, warmup_seconds=warmup_s,
                    fps=self.fps)

    def thread_settings(self) -> list[int]:
        """The thread counts to profile: as given, else every core this process may use.

        Always a number, passed to the runtime and reported: "the runtime's default" differs
        between runtimes (LiteRT, ExecuTorch and onnxruntime each pick their own).
        """
        from edgecn.runner import sysinfo

        return list(self.threads) if self.threads else [sysinfo.usable_cores()]

    def to_argv(self) -> list[str]:
        """``python -m edgecn.runner`` arguments for this request, JSON output (``remote`` excluded:
        it says where the argv runs, not what it measures)."""
        argv = [*self.artifacts, "--json"]
        for flag, value in (("--runs", self.runs), ("--duration", self.duration), ("--fps", self.fps),
                            ("--warmup", self.warmup),
                            ("--threads", ",".join(map(str, self.threads)) if self.threads else None),
                            ("--data", self.data)):
            if value is not None:
                argv += [flag, str(value)]
        argv += [f for f, on in (("--accuracy", self.accuracy), ("--op-profile", self.op_profile),
                                 ("--force", self.force), ("--batch", self.batch)) if on]
        return argv

    def replace(self, **changes) -> "ProfileRequest":
        return dataclasses.replace(self, **changes)


def profile(request: ProfileRequest) -> dict:
    """Measure ``request`` here or on its remote device; the ``edgecn-profile`` JSON document.

    Here: one artifact at one thread setting runs in this process; several artifacts or thread
    settings run one subprocess each (runtimes' thread pools are sized once per process, and two
    runtimes in one process fight), and their JSON is merged; ``batch`` runs many artifacts of
    one kind at one setting in this process instead.
    """
    if request.remote is not None:
        from edgecn.runner.remote import profile_remote

        return profile_remote(request)
    import edgecn
    from edgecn.runner import sysinfo
    from edgecn.runner.check import check_artifact
    from edgecn.runner.profile import Options, profile_artifact, verify

    plan = request.plan()
    threads = request.thread_settings()
    for a in request.artifacts:  # fail fast, before any subprocess starts
        verify(Path(a), request.force)  # the sha first: a mismatch says more than a structural complaint
        check_artifact(a)
    if any(Path(a).suffix.lower() == ".pte" for a in request.artifacts):
        from edgecn.runner.pte import native_binary

        native_binary()  # built here, once, before child processes could race to build it
    combos = [(a, t) for a in request.artifacts for t in threads]
    if request.batch:
        if len(threads) != 1 or len({Path(a).suffix.lower() for a in request.artifacts}) != 1:
            raise EdgecnError("--batch runs one kind of artifact at one thread setting",
                              "give artifacts of one suffix and one --threads value")
        opts = Options(plan=plan, threads=threads[0], force=request.force, keep_samples=False)
        results = [profile_artifact(a, opts) for a in request.artifacts]
    elif len(combos) == 1:
        opts = Options(plan=plan, threads=threads[0], accuracy=request.accuracy, data=request.data,
                       op_profile=request.op_profile, force=request.force, keep_samples=request.keep_samples)
        results = [profile_artifact(request.artifacts[0], opts)]
    else:
        results = [r for a, t in combos for r in _child(request.replace(artifacts=(a,), threads=(t,)))]
    return {"format": FORMAT, "version": 1, "edgecn": edgecn.__version__, "environment": sysinfo.environment(),
            "plan": plan.describe(), "results": results}


FORMAT = "edgecn-profile"


def _child(request: ProfileRequest) -> list[dict]:
    """Profile one artifact at one thread setting in a fresh python process."""
    import json
    import subprocess
    import sys

    (artifact,), (threads,) = request.artifacts, request.threads
    proc = subprocess.run([sys.executable, "-m", "edgecn.runner", *request.to_argv()], capture_output=True, text=True,
                          env=child_env())
    if proc.returncode != 0:  # recorded, and the others go on: one bad artifact does not lose the rest
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        last = last.split("error: ", 1)[1] if "edgecn profile: error: " in last else last
        return [{"artifact": artifact, "name": Path(artifact).name, "threads": threads,
                 "error": f"exit {proc.returncode}: {last}"}]
    results = json.loads(proc.stdout)["results"]
    if not request.keep_samples:
        for r in results:
            r["samples_ms"] = r["start_offsets_s"] = None
    return results


def child_env() -> dict[str, str]:
    """The environment of a child ``python -m edgecn.runner``: this edgecn first on its path
    (a checkout, an install, or the runner zip on a device)."""
    import edgecn

    root = str(Path(edgecn.__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
