"""A cached native .pte runner is a cache: any damage is found, set aside and rebuilt, never run.

Generated cases: every way the cached binary (or its build record) can be wrong, each checked
at ``native.find_binary`` (found, set aside with one line, so the caller rebuilds), and one
damaged cache end to end through ``python -m edgecn.runner`` (rebuilt, then runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgecn.runner import native

DAMAGE = ["empty", "not executable", "a folder", "a link to another program", "a FIFO", "for another machine",
          "truncated", "one byte flipped", "no build record", "a wrong build record", "an appended byte"]


def _damage(binary: Path, how: str) -> None:
    data = binary.read_bytes()
    record = binary.with_name(binary.name + ".sha256")
    if how in ("a folder", "a link to another program", "a FIFO"):
        binary.unlink()
        {"a folder": binary.mkdir, "a FIFO": lambda: os.mkfifo(binary),
         "a link to another program": lambda: binary.symlink_to(shutil.which("true"))}[how]()
    elif how == "not executable":
        binary.chmod(0o644)
    elif how == "no build record":
        record.unlink()
    elif how == "a wrong build record":
        record.write_text("0" * 64 + "\n")
    else:
        changed = {"empty": b"", "truncated": data[: len(data) // 2], "an appended byte": data + b"\0",
                   "one byte flipped": data[:len(data) // 3] + bytes([data[len(data) // 3] ^ 1]) + data[len(data) // 3 + 1:],
                   "for another machine": data[:18] + (183 if data[18] != 183 else 62).to_bytes(2, "little") + data[20:]}
        binary.write_bytes(changed[how])


@pytest.fixture
def cache(native_env, tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(native_env["EDGECN_CACHE_DIR"], copy, symlinks=True)
    monkeypatch.setenv("EDGECN_CACHE_DIR", str(copy))
    monkeypatch.delenv("EDGECN_PTE_RUNNER", raising=False)
    return copy


def test_a_sound_cache_is_used(cache):
    assert native.find_binary() == native.expected_binary()


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_cached_runner_is_set_aside(cache, capsys, how):
    binary = native.expected_binary()
    _damage(binary, how)
    assert native.find_binary() is None  # the caller builds it again
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "set aside" in err[0] and "building it again" in err[0], err
    assert not os.path.lexists(binary) and os.path.lexists(binary.with_name(binary.name + ".bad"))


def test_a_damaged_cache_is_rebuilt_and_runs(artifacts, cache, tmp_path):
    binary = native.expected_binary()
    _damage(binary, "one byte flipped")
    proc = subprocess.run([sys.executable, "-m", "edgecn.runner", str(artifacts / "model.pte"), "--runs", "3", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=900, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "set aside" in proc.stderr and native.cache_problem(binary) is None
