import os

import pytest

from edgecn.errors import EdgecnError
from edgecn.fileio import atomic_dir, atomic_path, atomic_write_bytes, sha256_file


def test_atomic_write_replaces_only_on_success(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"good")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert p.read_bytes() == b"good"
    assert [f.name for f in tmp_path.iterdir()] == ["a.bin"]  # no temp file left behind


def test_atomic_write_survives_keyboard_interrupt(tmp_path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"good")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"x")
            raise KeyboardInterrupt
    assert p.read_bytes() == b"good"


def test_atomic_dir_keeps_old_folder_on_failure_and_swaps_on_success(tmp_path):
    out = tmp_path / "build" / "m-t"
    with atomic_dir(out) as stage:
        (stage / "model.tflite").write_bytes(b"v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as stage:
            (stage / "model.tflite").write_bytes(b"v2-partial")
            raise RuntimeError("boom")
    assert (out / "model.tflite").read_bytes() == b"v1"
    with atomic_dir(out) as stage:
        (stage / "model.tflite").write_bytes(b"v2")
    assert (out / "model.tflite").read_bytes() == b"v2"
    assert sorted(f.name for f in out.parent.iterdir()) == ["m-t"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere, so a read-only folder cannot be simulated")
def test_unwritable_folder_is_a_user_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(EdgecnError):
        atomic_write_bytes(ro / "x", b"1")


def test_unwritable_location_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(EdgecnError, match="cannot create folder"):
        atomic_write_bytes(blocker / "sub" / "x", b"1")


def test_sha256(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_stage_of_a_killed_build_is_cleaned_up_by_the_next(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "m-t"
    code = ("import os, sys\nfrom edgecn.fileio import atomic_dir\n"
            f"with atomic_dir({str(out)!r}) as s:\n    (s / 'x').write_bytes(b'1')\n    os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code], check=False)
    leftovers = list(tmp_path.glob(".m-t.*.partial"))
    assert len(leftovers) == 1  # the killed process could not clean up
    with atomic_dir(out) as stage:
        (stage / "x").write_bytes(b"2")
    assert not list(tmp_path.glob(".m-t.*.partial"))
    assert (out / "x").read_bytes() == b"2"


def test_written_files_and_folders_follow_the_umask(tmp_path):
    """Artifacts are copied onto devices and into apps: not 0600/0700 as mkstemp/mkdtemp make them."""
    import stat

    from edgecn.fileio import atomic_dir, atomic_write_text

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as stage:
            atomic_write_text(stage / "manifest.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "d" / "manifest.json").stat().st_mode) == 0o640


def test_a_symlink_output_is_written_through_and_survives(tmp_path):
    target = tmp_path / "real" / "out.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "real" / "fresh.json")
    atomic_write_bytes(dangling, b"fresh")
    assert dangling.is_symlink() and (tmp_path / "real" / "fresh.json").read_bytes() == b"fresh"
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(loop)
    with pytest.raises(EdgecnError, match="link"):
        atomic_write_bytes(loop, b"x")
    assert loop.is_symlink() and (tmp_path / "loop2").is_symlink()
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["fresh.json", "out.json"]  # no temp left


def test_a_fifo_output_is_streamed_not_replaced(tmp_path):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    atomic_write_bytes(fifo, b"streamed")
    reader.join(timeout=30)
    assert got == [b"streamed"] and fifo.is_fifo()
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_character_device_output_is_written_not_replaced(tmp_path):
    import stat

    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot make a device node here ({e.strerror}): the FIFO test covers streams")
    atomic_write_bytes(node, b"discarded")
    assert stat.S_ISCHR(os.lstat(node).st_mode) and [p.name for p in tmp_path.iterdir()] == ["null"]


def test_a_socket_output_is_refused(tmp_path):
    import socket

    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(EdgecnError, match="socket"):
            atomic_write_bytes(path, b"x")


def test_a_planted_link_at_an_old_temporary_name_is_not_followed(tmp_path):
    """Temporary names are created exclusively: a link planted where a predictable name would be stays unused."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "plot.png"
    for planted in (".plot.png.tmp.png", ".plot.png.tmp", "plot.png.tmp", ".plot.png.partial"):
        (tmp_path / planted).symlink_to(victim)
    atomic_write_bytes(out, b"png")
    assert victim.read_text() == "keep me" and out.read_bytes() == b"png"
