"""``profile --plot PATH`` where PATH is not a plain new file: every kind the write layer knows,
through the command line, and a write cut short by the file-size limit (``ulimit -f``)."""

from __future__ import annotations

import os
import resource
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edgecn.terminal import is_visible

KINDS = ["new name", "old file", "folder", "fifo", "/dev/null", "socket", "link to a file", "link to a new name",
         "link to /dev/null", "link to a fifo", "dangling link into a missing folder", "link loop"]


def _make(kind: str, root: Path):
    target, keep = root / "plot.png", None
    if kind in ("old file", "link to a file"):
        target.write_bytes(b"old plot")
    elif kind == "folder":
        target.mkdir()
    elif kind in ("fifo", "link to a fifo"):
        os.mkfifo(target)
    elif kind == "socket":
        keep = socket.socket(socket.AF_UNIX)
        keep.bind(str(target))
    elif kind == "/dev/null":
        target = Path("/dev/null")
    if kind.startswith("link"):
        link = root / "link.png"
        link.symlink_to({"link to /dev/null": Path("/dev/null"), "link loop": link}.get(kind, target))
        return link, keep
    if kind == "dangling link into a missing folder":
        link = root / "link.png"
        link.symlink_to(root / "missing" / "plot.png")
        return link, keep
    return target, keep


def _state(p: Path):
    try:
        s = os.lstat(p)
    except FileNotFoundError:
        return None
    return (stat.S_IFMT(s.st_mode), os.readlink(p) if stat.S_ISLNK(s.st_mode) else None)


@pytest.mark.parametrize("kind", KINDS)
def test_plot_to_any_kind_of_path(artifacts, tmp_path, kind):
    pytest.importorskip("matplotlib")
    root = tmp_path / "out"
    root.mkdir()
    out, keep = _make(kind, root)
    before = {p: _state(p) for p in [out, root / "plot.png"]}
    reader = None
    if kind in ("fifo",):
        got = {}
        reader = threading.Thread(target=lambda: got.setdefault("data", open(out, "rb").read()), daemon=True)
        reader.start()
    proc = subprocess.run([sys.executable, "-m", "edgecn.runner", str(artifacts / "model.tflite"), "--runs", "3",
                           "--threads", "1", "--plot", str(out)], capture_output=True, text=True, timeout=300)
    if reader is not None and reader.is_alive():
        os.close(os.open(out, os.O_WRONLY | os.O_NONBLOCK))
    if keep:
        keep.close()
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr and is_visible(proc.stderr), proc.stderr
    if proc.returncode == 2:
        last = proc.stderr.strip().splitlines()[-1]
        assert "error:" in last and "Fix:" in last and str(out.name) in last, proc.stderr
    for p, was in before.items():  # what stood there still stands: a link is a link, a FIFO a FIFO
        if was is not None and was[0] != stat.S_IFREG:
            assert _state(p) == was, f"{p} was replaced"
    if proc.returncode == 0 and kind in ("new name", "old file", "link to a file", "link to a new name"):
        assert (root / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if kind == "fifo" and proc.returncode == 0:
        assert got["data"][:4] == b"\x89PNG"
    assert not [n for n in os.listdir(root) if n.startswith(".")], "a temporary file was left"


@pytest.mark.parametrize("limit", [2048, 8192, 20_000])
def test_a_plot_cut_short_by_the_file_size_limit_leaves_nothing(artifacts, tmp_path, limit):
    """``ulimit -f``: the write fails part way; the old plot stays, and no temporary file is left."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "plot.png"
    out.write_bytes(b"old plot")

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "edgecn.runner", str(artifacts / "model.tflite"), "--runs", "3",
                           "--threads", "1", "--plot", str(out)], capture_output=True, text=True, timeout=300,
                          preexec_fn=small_files)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "plot.png" in last and "Fix:" in last and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"old plot" and sorted(os.listdir(tmp_path)) == ["plot.png"]
