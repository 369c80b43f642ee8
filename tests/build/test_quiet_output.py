"""A build through the CLI prints edgecn's own lines only; the converters' and runtimes' logs go to build.log.

Every line of stdout and stderr must have one of the shapes edgecn prints (stage lines, the report's
heading, sentence and table, the closing line). A converter's progress line, an absl / oneDNN / glog
line, a FutureWarning or torchao's "Failed to load" fails the test, whatever its text. With --verbose
they reach the terminal, which shows the capture is real.
"""

import os
import re
import subprocess
import sys

import pytest

OWN = re.compile(r"^(\[build\] |# |\| |\|-|Float top-1 |wrote |note: |\*\*Warning\*\*: |edgecn build: WARNING: |$)")
TARGET = """name = "quiet"
description = "quiet output test: both ARM backends, fp32 and int8"
arch = "aarch64"
cpu = "cortex-a76"
backends = ["tflite", "executorch"]
precisions = ["fp32", "int8"]
"""


def _build(checkpoint, tmp_path, *extra):
    (tmp_path / "quiet.toml").write_text(TARGET)
    env = dict(os.environ, EDGECN_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "edgecn", "build", "--target", str(tmp_path / "quiet.toml"),
                           "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--max-drop", "100", *extra],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)


@pytest.mark.slow
def test_a_build_prints_only_edgecns_own_lines(checkpoint, tmp_path):
    proc = _build(checkpoint, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    foreign = [line for line in (proc.stdout + proc.stderr).splitlines() if not OWN.match(line)]
    assert not foreign, "lines from other libraries reached the terminal:\n" + "\n".join(foreign[:20])
    (folder,) = (tmp_path / "out").iterdir()
    log = (folder / "build.log").read_text()
    assert log.strip(), "the converters' output should be in build.log"
    assert f"{folder.name}/build.log" in proc.stdout  # the summary names the log


@pytest.mark.slow
def test_verbose_shows_the_converters_output(checkpoint, tmp_path):
    proc = _build(checkpoint, tmp_path, "--verbose")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [line for line in (proc.stdout + proc.stderr).splitlines() if not OWN.match(line)]
