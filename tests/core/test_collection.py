"""Every test file under tests/ is collected by the test command: a folder that pytest's
settings skip (its default norecursedirs held "build", which skipped tests/build) would
otherwise leave its tests out of every run without a word."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_file_is_collected():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    collected = {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    assert files, "no test files found"
    assert files <= collected, f"not collected by the test command: {sorted(files - collected)}\n{out.stderr[-2000:]}"
