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

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Iterator

from edgecn.errors import EdgecnError
from edgecn.runner.measure import MAX_PLAN_HOURS, Plan


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
        if self.threads is not None:
            object.__setattr__(self, "threads", tuple(dict.fromkeys(self.threads)))  # each setting once
            if len(self.threads) > MAX_THREAD_SETTINGS:
                raise EdgecnError(f"--threads lists {len(self.threads)} settings; at most {MAX_THREAD_SETTINGS} are "
                                  "profiled in one run (each is a process, each measured in full)",
                                  "pass the settings that matter, e.g. --threads 1,2,4")
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

    def least_seconds(self) -> float:
        """The least time this request measures (warm-up and timed loop, every artifact and setting;
        loading and the accuracy pass come on top)."""
        plan = self.plan()
        timed = max(plan.min_seconds, (plan.runs - 1) / plan.fps if plan.fps else 0.0)
        each = plan.warmup_seconds + min(plan.max_seconds, timed)
        return each * len(self.artifacts) * len(self.threads or (None,))

    def bound_seconds(self) -> float | None:
        """How long one artifact at one setting may take before its runner is taken for hung:
        twice its timed part plus ``CHILD_SLACK_S`` (loading, a compile, an accuracy pass), when
        the plan ends by time (the default, or --duration); None with --runs, whose length
        follows the model's latency."""
        return None if self.runs is not None else 2 * (self.duration or self.plan().max_seconds) + CHILD_SLACK_S

    def check_length(self, say=None) -> None:
        """Say up front when the plan measures for more than a minute; refuse one of more than
        ``MAX_PLAN_HOURS`` (a typo such as --fps 0.01 with --runs 1000 would run for a day)."""
        least = self.least_seconds()
        shape = (f"{len(self.artifacts)} artifact(s) x {len(self.threads or (None,))} thread setting(s), "
                 f"{self.plan().describe()}{f', frames at {self.fps:g} fps' if self.fps else ''}")
        if least > MAX_PLAN_HOURS * 3600:
            raise EdgecnError(f"this plan measures for at least {_duration(least)} ({shape})",
                              f"lower --runs or --duration, raise --fps, or profile fewer settings; at most "
                              f"{MAX_PLAN_HOURS} h in one run")
        if least > 60 and say is not None:
            say(f"edgecn profile: measuring for at least {_duration(least)} ({shape})")

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

    Stopped part way (Ctrl-C, SIGTERM) with some settings measured, the KeyboardInterrupt
    carries them as ``partial_document`` (marked ``interrupted``, with the ``planned`` count).
    """
    import sys

    request.check_length(say=lambda line: print(line, file=sys.stderr))
    if request.remote is not None:
        from edgecn.runner.remote import profile_remote

        return profile_remote(request)
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
        results = []
        try:
            for a, t in combos:
                results += _child(request.replace(artifacts=(a,), threads=(t,)))
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: what was measured travels with it
            if results:
                stop.partial_document = dict(_document(plan, results), interrupted=True, planned=len(combos))
            raise
    return _document(plan, results)


def _document(plan, results: list[dict]) -> dict:
    import edgecn
    from edgecn.runner import sysinfo

    return {"format": FORMAT, "version": 1, "edgecn": edgecn.__version__, "environment": sysinfo.environment(),
            "plan": plan.describe(), "results": results}


FORMAT = "edgecn-profile"
MAX_THREAD_SETTINGS = 64
CHILD_SLACK_S = 900.0
"""Beyond its plan, what a child runner may take (loading, compiling, an accuracy pass) before it is taken for hung."""


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


_NUMBER = (int, float)
_MEASURED = {"artifact": str, "name": str, "runtime": str, "runs": int, "load_ms": _NUMBER, "first_ms": _NUMBER,
             "throughput_ips": _NUMBER, "latency_ms": dict, "integrity": dict}
"""What the host reads from each measured result (report, plots, tables); a failed one needs only a name and its error."""
_LATENCY = ("min", "mean", "median", "p10", "p90", "p99", "max")
_DOC_FIX = ("check the runner there: run `python -m edgecn.runner ARTIFACT --json` on it by hand, and install the same "
            "edgecn version there as here")


def read_document(text: str, source: str, results: int, controls_allowed: bool = False) -> dict:
    """The ``edgecn-profile`` document a runner process printed, checked before anything reads it.

    ``source`` names who answered (a device over ssh, a child process) and ``results`` how many
    results were asked for. Text, a JSON list, missing or mistyped keys, a string holding a
    terminal control character: each is an EdgecnError naming ``source`` and showing (escaped,
    shortened) what came back, never a KeyError or a raw escape sequence on the user's screen.
    ``controls_allowed``: for this machine's own child processes, whose strings are the user's
    own file names (printed escaped all the same).
    """
    from edgecn.limits import parse_json
    from edgecn.terminal import visible

    shown = repr(visible(text.strip())[:100] + ("..." if len(text.strip()) > 100 else ""))
    try:
        doc = parse_json(text.encode("utf-8", "surrogateescape"), "the answer of", source, _DOC_FIX)
    except EdgecnError as e:
        reason = e.what.partition(f"{source!r} ")[2] or e.what
        raise EdgecnError(f"{source} answered {shown}, which is not an {FORMAT} JSON document: it {reason}",
                          _DOC_FIX) from None
    problem = _document_problem(doc, results, controls_allowed)
    if problem:
        raise EdgecnError(f"{source} answered a document that {problem}: {shown}", _DOC_FIX)
    return doc


def _document_problem(doc, results: int, controls_allowed: bool = False) -> str | None:
    if not isinstance(doc, dict):
        return f"is a JSON {type(doc).__name__}, not an object"
    if doc.get("format") != FORMAT or doc.get("version") != 1:
        return f"is not {FORMAT} version 1 (format {doc.get('format')!r}, version {doc.get('version')!r})"
    if not isinstance(doc.get("environment"), dict) or not isinstance(doc.get("results"), list):
        return "lacks its environment or results"
    if len(doc["results"]) != results:
        return f"holds {len(doc['results'])} results where {results} were asked for"
    for i, r in enumerate(doc["results"]):
        problem = _result_problem(r)
        if problem:
            return f"has results[{i}] {problem}"
    bad = None if controls_allowed else _invisible(doc)
    return f"holds a terminal control character in {bad}" if bad else None


def _result_problem(r) -> str | None:
    if not isinstance(r, dict):
        return "that is not an object"
    wanted = {"name": str, "error": str} if "error" in r else _MEASURED
    for key, kind in wanted.items():
        value = r.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"without {key!r} as {getattr(kind, '__name__', 'a number')}"
    if r.get("threads") is not None and (not isinstance(r["threads"], int) or isinstance(r["threads"], bool)):
        return "with threads that are not a whole number"
    if "error" not in r:
        if not all(isinstance(r["latency_ms"].get(k), _NUMBER) for k in _LATENCY):
            return f"without latency_ms {', '.join(_LATENCY)}"
        if not isinstance(r["integrity"].get("verified"), bool):
            return "without integrity.verified"
    return None


def _invisible(value, where: str = "") -> str | None:
    """Where in ``value`` the first string (key or value) holding a terminal control character is."""
    from edgecn.terminal import is_visible, visible

    if isinstance(value, str):
        return None if is_visible(value) else (where or "the document")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        here = f"{where}[{k}]" if isinstance(k, int) else f"{where}.{visible(k)}" if where else visible(k)
        found = here if isinstance(k, str) and not is_visible(k) else _invisible(v, here)
        if found:
            return found
    return None


def _child(request: ProfileRequest) -> list[dict]:
    """Profile one artifact at one thread setting in a fresh python process."""
    import subprocess
    import sys

    (artifact,), (threads,) = request.artifacts, request.threads
    bound = request.bound_seconds()
    try:
        with tether() as stdin:
            proc = subprocess.run([sys.executable, "-m", "edgecn.runner", *request.to_argv(), STOP_WITH_INPUT],
                                  stdin=stdin, capture_output=True, text=True, env=child_env(), timeout=bound)
    except subprocess.TimeoutExpired:  # killed by run(); recorded, and the others go on
        return [{"artifact": artifact, "name": Path(artifact).name, "threads": threads,
                 "error": f"the runner process did not finish within {_duration(bound)} (its plan ends sooner): "
                          "stopped; it may hang on this artifact"}]
    if proc.returncode != 0:  # recorded, and the others go on: one bad artifact does not lose the rest
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        last = last.split("error: ", 1)[1] if "edgecn profile: error: " in last else last
        return [{"artifact": artifact, "name": Path(artifact).name, "threads": threads,
                 "error": f"exit {proc.returncode}: {last}"}]
    results = read_document(proc.stdout, f"the runner process for {artifact!r}", 1, controls_allowed=True)["results"]
    if not request.keep_samples:
        for r in results:
            r["samples_ms"] = r["start_offsets_s"] = None
    return results


STOP_WITH_INPUT = "--stop-with-input"
"""The runner's hidden option: stop when stdin closes (see ``tether``)."""


@contextlib.contextmanager
def tether() -> Iterator[int]:
    """A pipe's read end to give a child as stdin, its write end held here and never written.

    A child runner started with ``STOP_WITH_INPUT`` stops when the pipe closes: when this block
    ends, or when this process dies in any way (even SIGKILL: the kernel closes the write end).
    Through ssh the same pipe reaches the device: ssh passes the end of its input on, and a
    dropped connection closes the device side's input too.
    """
    read, write = os.pipe()  # not inheritable: no child holds the write end open
    try:
        yield read
    finally:
        os.close(read)
        os.close(write)


def child_env() -> dict[str, str]:
    """The environment of a child ``python -m edgecn.runner``: this edgecn first on its path
    (a checkout, an install, or the runner zip on a device)."""
    import edgecn

    root = str(Path(edgecn.__file__).resolve().parent.parent)
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
