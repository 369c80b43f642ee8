"""The environment as input, through the command lines: a bad variable, a bad program named by
one, an encoding that cannot show a name, closed standard streams. Each case ends with success
or exit 2 and one line naming the variable (or stream) and the fix; no traceback, no hang."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner_helpers import REPO

FOLDER_VALUES = {"a file": "file", "a link loop": "loop-a", "under a file": "file/below", "too long": "x" * 300,
                 "unwritable": "/proc/edgecn-cache"}
PROGRAMS = {"prints garbage": "echo garbage; sleep 30", "prints another JSON": "echo '{\"ok\": true}'; sleep 30",
            "crashes": "kill -SEGV $$", "exits at once": "exit 0", "not executable": None, "a folder": None}


def _places(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("x")
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    return tmp_path


def _one_line(proc, *named: str) -> None:
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and "Fix:" in last and all(n in last for n in named), proc.stderr


def _run(args, env_change: dict, cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in env_change}
    env.update({k: v for k, v in env_change.items() if v is not None})
    return subprocess.run([sys.executable, *args], capture_output=True, encoding="utf-8", errors="replace", env=env,
                          cwd=cwd, timeout=120, **kw)


@pytest.mark.parametrize("value", FOLDER_VALUES, ids=list(FOLDER_VALUES))
@pytest.mark.parametrize("variable", ["EDGECN_CACHE_DIR", "EDGECN_TARGETS_DIR", "XDG_CACHE_HOME"])
def test_a_bad_folder_variable_is_named(artifacts, tmp_path, variable, value):
    root = _places(tmp_path)
    text = FOLDER_VALUES[value]
    text = text if text.startswith("/") else str(root / text)
    if variable == "EDGECN_TARGETS_DIR":
        proc = _run(["-m", "edgecn", "targets"], {variable: text}, tmp_path)
    else:  # the native .pte runner's cache
        proc = _run(["-m", "edgecn.runner", str(artifacts / "model.pte"), "--runs", "3"],
                    {variable: text, "EDGECN_CACHE_DIR": None} if variable == "XDG_CACHE_HOME" else {variable: text},
                    tmp_path)
    if variable == "EDGECN_TARGETS_DIR" and value == "unwritable":
        assert proc.returncode == 2 or proc.returncode == 0  # a folder that does not exist: no user targets
        return
    _one_line(proc, variable if variable != "XDG_CACHE_HOME" or value != "unwritable" else "cache")


@pytest.mark.parametrize("program", PROGRAMS, ids=list(PROGRAMS))
def test_a_bad_pte_runner_program_is_named(artifacts, tmp_path, program):
    path = tmp_path / "runner"
    if program == "a folder":
        path.mkdir()
    else:
        path.write_text(f"#!/bin/sh\n{PROGRAMS[program] or 'exit 0'}\n")
        path.chmod(0o644 if program == "not executable" else 0o755)
    proc = _run(["-m", "edgecn.runner", str(artifacts / "model.pte"), "--runs", "3"],
                {"EDGECN_PTE_RUNNER": str(path)}, tmp_path)
    _one_line(proc, "runner")


def test_a_pte_runner_that_hangs_is_named_after_its_bound(artifacts, monkeypatch, tmp_path):
    from edgecn.errors import EdgecnError
    from edgecn.runner import pte
    from edgecn.runner.profile import Options, profile_artifact

    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")
    hang.chmod(0o755)
    monkeypatch.setenv("EDGECN_PTE_RUNNER", str(hang))
    monkeypatch.setattr(pte, "START_TIMEOUT_S", 1.0)
    with pytest.raises(EdgecnError, match="said nothing for 1 s"):
        profile_artifact(artifacts / "model.pte", Options(threads=1))


@pytest.mark.parametrize("values", [{"RANK": "abc"}, {"RANK": "-1"}, {"RANK": "3", "WORLD_SIZE": "2"},
                                    {"WORLD_SIZE": "0"}, {"LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "4"},
                                    {"LOCAL_WORLD_SIZE": "8", "WORLD_SIZE": "2", "RANK": "1"}, {"RANK": "9" * 40}],
                         ids=lambda v: ",".join(f"{k}={v[k][:6]}" for k in v))
def test_torchrun_variables_that_disagree_are_named_before_training(tmp_path, values):
    proc = _run(["-m", "edgecn", "train", "--model", "condensenet-light", "--epochs", "1", "--out", str(tmp_path / "o")],
                {"RANK": None, "WORLD_SIZE": None, "LOCAL_RANK": None, "LOCAL_WORLD_SIZE": None, **values}, tmp_path)
    _one_line(proc)
    assert any(k in proc.stderr for k in values) and not (tmp_path / "o").exists()


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": None},
                                 {"PYTHONIOENCODING": "latin-1"}], ids=["ascii", "C locale", "latin-1"])
def test_names_the_terminal_cannot_encode_are_shown_escaped(artifacts, tmp_path, env):
    folder = tmp_path / "modèles ✓"
    folder.mkdir()
    art = Path(shutil.copy(artifacts / "model.tflite", folder / "mödel✓.tflite"))
    ok = _run(["-m", "edgecn.runner", str(art), "--runs", "3", "--threads", "1"], env, tmp_path)
    assert ok.returncode == 0 and "Traceback" not in ok.stderr, ok.stderr[-2000:]
    assert "m\\xf6del" in ok.stdout or "mödel" in ok.stdout or "m\ufffddel" in ok.stdout
    missing = _run(["-m", "edgecn.runner", str(folder / "nö.tflite")], env, tmp_path)
    _one_line(missing)


def test_closed_or_early_closed_standard_streams(artifacts, tmp_path):
    closed = subprocess.run([sys.executable, "-m", "edgecn", "targets"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120,
                            preexec_fn=lambda: os.close(1))
    assert closed.returncode == 2 and "standard output is closed" in closed.stderr, closed.stderr
    no_stdin = subprocess.run([sys.executable, "-m", "edgecn.runner", str(artifacts / "model.tflite"), "--runs", "3"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              preexec_fn=lambda: os.close(0))
    assert no_stdin.returncode == 0, no_stdin.stderr[-2000:]
    reader = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    early = subprocess.run([sys.executable, "-m", "edgecn", "models"], stdout=reader.stdin, stderr=subprocess.PIPE,
                           text=True, cwd=REPO, timeout=120)
    reader.stdin.close()
    reader.wait()
    assert early.returncode in (0, 141) and "Traceback" not in early.stderr, early.stderr
