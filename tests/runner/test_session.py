"""The profile session API: one request object, one argv form, the same results as the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecn.errors import EdgecnError
from edgecn.runner.cli import build_parser
from edgecn.runner.session import ProfileRequest, Remote, profile
from runner_helpers import interruptible, wait_for

REPO = Path(__file__).resolve().parents[2]

REQUESTS = [
    ProfileRequest(("a.tflite",)),
    ProfileRequest(("a.tflite", "b.pte"), threads=(1, 2, 4), runs=7, warmup=0, force=True),
    ProfileRequest(("a.onnx",), duration=2.5, fps=30.0, accuracy=True, data="digits"),
    ProfileRequest(("x/a.tflite",), threads=(3,), runs=1, op_profile=True, data="my images/", batch=True),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=range(len(REQUESTS)))
def test_to_argv_is_what_the_command_line_parses_back(request_):
    again = ProfileRequest.from_args(build_parser().parse_args(request_.to_argv()))
    assert again == request_


def test_the_remote_comes_from_the_command_line_and_stays_out_of_the_argv():
    args = build_parser().parse_args(["m.tflite", "--remote", "pi@host:2222", "--remote-python", "~/venv/bin/python",
                                      "--ssh-key", "k", "--ssh-option", "Compression=yes", "--accept-new-host-key"])
    req = ProfileRequest.from_args(args)
    assert req.remote == Remote("pi@host:2222", "~/venv/bin/python", "k", ("Compression=yes",), True)
    assert not any(a.startswith("--remote") or a.startswith("--ssh") for a in req.to_argv())


def test_plan_follows_benchmark_model_unless_told():
    assert ProfileRequest(("a.tflite",)).plan().describe() == \
        "at least 50 runs and 1 s, at most 150 s, after at least 10 warm-up runs and 0.5 s"
    plan = ProfileRequest(("a.tflite",), runs=5, warmup=2).plan()
    assert (plan.runs, plan.min_seconds, plan.warmup, plan.warmup_seconds) == (5, 0.0, 2, 0.0)


def test_bad_requests_are_refused_before_anything_runs():
    with pytest.raises(EdgecnError, match="nothing to profile"):
        ProfileRequest(())
    with pytest.raises(EdgecnError, match="do not mix"):
        ProfileRequest(("a.tflite",), op_profile=True, fps=30)
    with pytest.raises(EdgecnError, match="does not exist"):
        profile(ProfileRequest(("no/such.tflite",), runs=1))


def test_profile_here_and_in_children_matches_the_command_line(artifacts):
    tflite = str(artifacts / "model.tflite")
    one = profile(ProfileRequest((tflite,), threads=(1,), runs=5, warmup=1))
    (r,) = one["results"]
    assert one["format"] == "edgecn-profile" and r["runs"] == 5 and r["threads"] == 1 and r["integrity"]["verified"]
    sweep = profile(ProfileRequest((tflite,), threads=(1, 2), runs=5, warmup=1, keep_samples=False))
    assert [r["threads"] for r in sweep["results"]] == [1, 2]
    assert all(r["samples_ms"] is None and r["runs"] == 5 for r in sweep["results"])
    cli = subprocess.run([sys.executable, "-m", "edgecn.runner", *ProfileRequest((tflite,), threads=(1,), runs=5,
                                                                                 warmup=1).to_argv()],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    (c,) = json.loads(cli.stdout)["results"]
    assert {k: c[k] for k in ("name", "runs", "threads", "precision")} == {k: r[k] for k in ("name", "runs", "threads",
                                                                                             "precision")}


def test_the_benchmarks_worker_times_with_the_runners_loop(artifacts):
    """bench/worker.py (held open, timed on request) stops as its Plan says: at least MIN_RUNS and SECONDS."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "worker.py"), str(artifacts / "model.tflite"), "1"],
                          input="time 0.05 7\ntime 0 3\nquit\n", capture_output=True, text=True, cwd=REPO,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    ready, first, second = [json.loads(line) for line in proc.stdout.splitlines()]
    assert ready["ready"] and first["runs"] >= 7 and second["runs"] == 3 and 0 < first["median_ms"] < 1000


def _descendants(root: int) -> set[int]:
    """Every process below ``root`` (children, their children, ...), from /proc."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        parents[int(pid)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("suffix", [".tflite", ".onnx", ".pte"])
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_a_killed_profile_leaves_no_runner_processes(artifacts, native_env, tmp_path, suffix, sig):
    """Two artifacts run in child processes (the .pte's child has the native runner below it);
    however the parent is stopped, even by SIGKILL, its children notice and exit."""
    import shutil
    import signal

    folder = tmp_path / "watched"
    shutil.copytree(artifacts, folder, ignore=shutil.ignore_patterns("int8", "steady"))
    art = folder / f"model{suffix}"
    parent = subprocess.Popen([sys.executable, "-m", "edgecn.runner", str(art), str(art), "--duration", "120",
                               "--threads", "1"], cwd=tmp_path, env=native_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, preexec_fn=interruptible)
    below: set[int] = set()
    try:
        wanted = 2 if suffix == ".pte" else 1  # the child runner, and the native one under it
        assert wait_for(lambda: len(below.update(_descendants(parent.pid)) or below) >= wanted, 90), "no child started"
        parent.send_signal(getattr(signal, sig))
        parent.wait(timeout=30)
        assert wait_for(lambda: not any(map(_alive, below)), 30), f"left running after {sig} of the parent: {below}"
    finally:
        for pid in [parent.pid, *below]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        parent.wait()


def test_thread_settings_are_taken_once_and_capped():
    assert ProfileRequest(("a.tflite",), threads=(1, 2, 1, 4, 2)).threads == (1, 2, 4)
    with pytest.raises(EdgecnError, match="at most 64"):
        ProfileRequest(("a.tflite",), threads=tuple(range(1, 200)))


@pytest.mark.parametrize("kw, outcome", [
    (dict(), "quiet"),                                     # benchmark_model's plan: about 1.5 s
    (dict(duration=120.0), "said"),
    (dict(fps=0.001), "said"),                             # one frame per 1000 s: the plan's 150 s cap ends it
    (dict(threads=tuple(range(1, 65))), "said"),           # 64 settings x 1.5 s
    (dict(runs=1000, fps=0.01), "refused"),                # 28 h of frames
    (dict(duration=9 * 3600.0), "refused"),
    (dict(artifacts=tuple(f"m{i}.tflite" for i in range(40)), duration=900.0), "refused"),  # 10 h in all
])
def test_long_plans_are_said_up_front_and_day_long_ones_refused(kw, outcome):
    request = ProfileRequest(**{"artifacts": ("a.tflite",), **kw})
    said: list[str] = []
    if outcome == "refused":
        with pytest.raises(EdgecnError, match="measures for at least"):
            request.check_length(said.append)
    else:
        request.check_length(said.append)
        assert (len(said) == 1) == (outcome == "said"), said


def test_a_day_long_plan_is_refused_before_anything_runs(artifacts, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgecn.runner", str(artifacts / "model.tflite"), "--runs", "1000",
                           "--fps", "0.01"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "measures for at least 27.8 h" in proc.stderr and "Fix:" in proc.stderr, proc.stderr


def test_a_child_runner_that_hangs_is_stopped_at_its_bound(artifacts, native_env, tmp_path, monkeypatch):
    """A runner process that never finishes (here: its native runner never starts) is stopped after
    its plan's bound, recorded as failed, and the other settings go on."""
    from edgecn.runner import session

    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec cat > /dev/null\n")  # says nothing; gone when its input closes
    hang.chmod(0o755)
    monkeypatch.setenv("EDGECN_PTE_RUNNER", str(hang))
    monkeypatch.setattr(session, "CHILD_SLACK_S", 3.0)
    request = ProfileRequest((str(artifacts / "model.pte"),), threads=(1,), duration=0.5)
    (result,) = session._child(request)
    assert "did not finish within" in result["error"] and "hang" in result["error"]


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stopped_profile_shows_what_it_measured(artifacts, tmp_path, sig, code):
    """Three thread settings, one child each; stopped while the second runs: the first is shown."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "edgecn.runner", str(artifacts / "model.tflite"), "--threads",
                             "1,2,3", "--duration", "3", "--json"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while len(seen) < 2 and time.monotonic() < deadline:  # a second child: the first has finished
        seen |= _descendants(proc.pid)
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err[-2000:]
    doc = json.loads(out)
    assert doc["interrupted"] and doc["planned"] == 3 and doc["results"][0]["threads"] == 1, doc
    assert "stopped after 1 of 3" in err and "Traceback" not in err


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(runs=st.integers(1, 100_000_000), latency=st.floats(1e-6, 10.0), fps=st.one_of(st.none(), st.floats(0.001, 1000.0)),
       warm=st.integers(0, 5))
def test_runs_plans_are_estimated_from_the_measured_latency(runs, latency, fps, warm):
    """With --runs the length follows the model: runs x latency (or the frame period) past 8 h is
    refused before the timed loop, past a minute said; a time-capped plan is never estimated."""
    from edgecn.runner.measure import MAX_PLAN_HOURS, Plan, check_estimate

    plan = Plan(runs=runs, min_seconds=0.0, max_seconds=float("inf"), fps=fps)
    total = runs * max(latency, 1 / fps if fps else 0.0)
    said: list[str] = []
    if total > MAX_PLAN_HOURS * 3600 * 1.0001:
        with pytest.raises(EdgecnError, match="would measure m.tflite for about"):
            check_estimate(plan, latency, [latency] * warm, "m.tflite", said.append)
    elif total < MAX_PLAN_HOURS * 3600 * 0.9999:
        check_estimate(plan, latency, [latency] * warm, "m.tflite", said.append)
        assert bool(said) == (total > 60 * 1.0001) or 60 * 0.9999 <= total <= 60 * 1.0001, (total, said)
    check_estimate(Plan(runs=runs), latency, [latency] * warm, "m.tflite", said.append)  # capped at 150 s: no estimate


def test_a_long_runs_plan_is_said_once_the_latency_is_known(artifacts, tmp_path):
    """100 million runs of a small model: the estimate (hours) is said right after the warm-up,
    before the timed loop, in the child runner whose output the parent passes on."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "edgecn.runner", str(artifacts / "steady" / "model.tflite"),
                             "--runs", "100000000", "--force"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        said = ""
        deadline = time.monotonic() + 120
        while "runs at about" not in said and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            said += line
        assert "100000000 runs at about" in said, said[-2000:]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
