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
