"""Helpers shared by the runner tests (a plain module: test files import it by name)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_runner(*args, python: str = sys.executable, env: dict | None = None, timeout: int = 300):
    """``python -m edgecn.runner ARGS`` in a subprocess (a crash shows as a signal, not a dead test run)."""
    return subprocess.run([python, "-m", "edgecn.runner", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)
