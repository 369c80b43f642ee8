"""Outputs that are not plain files, and temporary names beside an output: generated cases.

Every output edgecn writes goes through ``fileio.atomic_path``. Hypothesis draws what stands
at the output name (nothing, a file, a folder, a FIFO, a device, a socket, chains of absolute
and relative links to any of those, a loop), how the write goes (complete, an OSError such as
a full disk after some bytes, Ctrl-C) and links planted at the exact temporary names the
write will try. Whatever is drawn: the write lands, or one EdgecnError with a fix is raised
(Ctrl-C passes through); no device, FIFO, socket, folder or link is replaced; no planted
link is followed; nothing temporary is left in any folder involved.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecn.errors import EdgecnError
from edgecn.fileio import atomic_path

ENDS = ["nothing", "nothing in a missing folder", "file", "folder", "fifo", "/dev/null", "socket", "loop"]
LINK = st.tuples(st.booleans(), st.booleans())  # (relative, in another folder)
ENDING = st.sampled_from(["complete", "full disk", "Ctrl-C"])


class _Fifo:
    """A reader on a FIFO, released if nobody ever writes."""

    def __init__(self, path: Path):
        self.path, self.data = path, None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        with open(self.path, "rb") as f:
            self.data = f.read()

    def close(self):
        if self.thread.is_alive():
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        self.thread.join(10)


def _node(path: Path) -> tuple:
    """What stands at ``path``: its type, and a link's text or a file's bytes."""
    try:
        st_ = os.lstat(path)
    except FileNotFoundError:
        return ("nothing",)
    if stat.S_ISLNK(st_.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISREG(st_.st_mode):
        return ("file", path.read_bytes())
    return (stat.S_IFMT(st_.st_mode), st_.st_ino)


def _build(root: Path, end: str, links) -> tuple[Path, Path, object]:
    """The output path (the head of a chain of ``links``) and the node the chain ends at."""
    (root / "out").mkdir()
    (root / "elsewhere").mkdir()
    keep = None
    final = {"nothing in a missing folder": root / "missing" / "deeper" / "result.bin",
             "/dev/null": Path("/dev/null")}.get(end, root / "out" / "result.bin")
    if end == "file":
        final.write_bytes(b"the old content")
    elif end == "folder":
        final.mkdir()
    elif end == "fifo":
        os.mkfifo(final)
    elif end == "socket":
        keep = socket.socket(socket.AF_UNIX)
        keep.bind(str(final))
    target = final
    for i, (relative, elsewhere) in enumerate(links):
        link = root / ("elsewhere" if elsewhere else "out") / f"link{i}.bin"
        link.symlink_to(os.path.relpath(target, link.parent) if relative else target)
        target = link
    if end == "loop":
        a, b = root / "out" / "loop-a", root / "out" / "loop-b"
        a.symlink_to(b)
        b.symlink_to(a)
        target = a
    return target, final, keep


def _listing(folders) -> dict:
    return {str(f): sorted(os.listdir(f)) for f in folders if f.is_dir()}


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(end=st.sampled_from(ENDS), links=st.lists(LINK, max_size=3), ending=ENDING,
       fail_after=st.integers(0, 3), planted=st.integers(0, 4), data=st.binary(min_size=1, max_size=3000))
def test_any_output_node_is_written_or_refused_never_replaced(end, links, ending, fail_after, planted, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path, final, keep = _build(root, end, links)
        fifo = _Fifo(final) if end == "fifo" else None
        victim = root / "elsewhere" / "victim.txt"
        victim.write_text("keep me")
        systmp = root / "systmp"  # the temporary folder of this test's writes (tempfile.tempdir)
        systmp.mkdir()
        # links planted at the exact names the write will try first: beside the output (mkstemp)
        # and in the temporary folder (mkdtemp, for a stream output)
        names = [f"planted{i}" for i in range(planted)] + [f"free{i}" for i in range(100)]
        for name in names[:planted]:
            if final.parent.is_dir() and final.parent != Path("/dev"):
                (final.parent / f".{final.name}.{name}.tmp").symlink_to(victim)
            (systmp / f"edgecn-out-{name}").symlink_to(victim.parent, target_is_directory=True)
        chain = [path, *(root / d / f"link{i}.bin" for d in ("out", "elsewhere") for i in range(len(links))),
                 root / "out" / "loop-b", final]
        nodes = {p: _node(p) for p in chain if p != Path("/dev/null")}
        folders = [root / "out", root / "elsewhere", final.parent, systmp, victim.parent]
        before = _listing(folders)
        gen = iter(names)
        real_names = tempfile._get_candidate_names
        tempfile._get_candidate_names = lambda: gen  # mkstemp/mkdtemp try these names, in order
        tempfile.tempdir = str(systmp)
        outcome = "written"
        try:
            with atomic_path(path) as out:
                with open(out, "wb") as f:
                    for i in range(4):
                        if ending != "complete" and i == fail_after:
                            if ending == "Ctrl-C":
                                raise KeyboardInterrupt
                            raise OSError(errno.ENOSPC, "No space left on device")
                        f.write(data[i * len(data) // 4:(i + 1) * len(data) // 4])
        except EdgecnError as e:
            outcome = "refused"
            assert e.fix and "\n" not in e.message
        except KeyboardInterrupt:
            outcome = "interrupted"
            assert ending == "Ctrl-C"
        finally:
            tempfile._get_candidate_names = real_names
            tempfile.tempdir = None
            if fifo:
                fifo.close()
            if keep:
                keep.close()
        assert victim.read_text() == "keep me", "a planted link was followed"
        assert outcome != "written" or ending == "complete"
        for p, was in nodes.items():
            now = _node(p)
            if p == final and outcome == "written" and was[0] in ("nothing", "file"):
                assert now == ("file", data)
            else:
                assert now == was, f"{p} changed: {was} -> {now}"
        if fifo and outcome == "written":
            assert fifo.data == data
        if end == "/dev/null":
            assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
        after = _listing(folders)
        for folder, entries in after.items():
            new = set(entries) - set(before.get(folder, []))
            allowed = {final.name} if outcome == "written" and Path(folder) == final.parent else set()
            assert new <= allowed, f"left in {folder}: {new - allowed}"
        assert sorted(os.listdir(victim.parent)) == before[str(victim.parent)]
