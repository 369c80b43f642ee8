"""The environment as input: generated values for every variable edgecn reads, at its one reading layer.

Whatever a variable holds, ``edgecn.environment`` returns a usable value or raises one
EdgecnError naming the variable and the fix; nothing else escapes (no ValueError from int(),
no OSError from a stat, no RuntimeError from a link loop).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecn import environment
from edgecn.errors import EdgecnError

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
FOLDER_VARS = [environment.CACHE, environment.TARGETS, environment.CALIBRATION, "XDG_CACHE_HOME"]


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("env")
    (root / "folder").mkdir()
    (root / "file").write_text("x")
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    (root / "to-folder").symlink_to(root / "folder")
    (root / "to-file").symlink_to(root / "file")
    return {"folder": str(root / "folder"), "missing": str(root / "new" / "cache"), "file": str(root / "file"),
            "under a file": str(root / "file" / "cache"), "loop": str(root / "loop-a"),
            "loop below": str(root / "loop-a" / "x"), "link to a folder": str(root / "to-folder"),
            "link to a file": str(root / "to-file"), "long": "/" + "a" * 5000, "long part": f"{root}/{'b' * 300}",
            "relative": "relative/cache", "home": "~/cache-here", "spaces": str(root / "a b ;$(x)"),
            "unwritable": "/proc/edgecn-cache", "non-utf8": os.fsdecode(b"/tmp/\xff\xfe-cache")}


VALUE = st.one_of(st.sampled_from(["folder", "missing", "file", "under a file", "loop", "loop below", "link to a folder",
                                   "link to a file", "long", "long part", "relative", "home", "spaces", "unwritable",
                                   "non-utf8"]),
                  st.text(min_size=1, max_size=40).map(lambda t: "text:" + t))


def _value(places, v: str) -> str:
    return v[5:] if v.startswith("text:") else places[v]


@SETTINGS
@given(name=st.sampled_from(FOLDER_VARS), value=VALUE)
def test_folder_variables(places, monkeypatch, name, value):
    text = _value(places, value)
    if "\0" in text:
        return  # an environment cannot hold NUL
    monkeypatch.setenv(name, text)
    try:
        path = environment.folder(name) if name != environment.CACHE else environment.cache_dir()
        assert path is None or isinstance(path, Path)
        if path is not None and path.exists():
            assert path.is_dir()
    except EdgecnError as e:
        assert f"${name}" in e.message and e.fix and "\n" not in e.message
        assert value in ("file", "under a file", "loop", "loop below", "link to a file", "long", "long part") \
            or value.startswith("text:"), f"{value!r} refused: {e.message}"


@SETTINGS
@given(value=VALUE)
def test_the_cache_folder_is_made_or_named(places, monkeypatch, value):
    text = _value(places, value)
    if "\0" in text or value in ("relative", "spaces") or value.startswith("text:"):
        return  # not made in the test's working folder
    monkeypatch.setenv(environment.CACHE, text)
    try:
        made = environment.ensure_cache_folder(environment.cache_dir() / "native")
        assert made.is_dir()
    except EdgecnError as e:
        assert environment.CACHE in e.message and e.fix and "\n" not in e.message


NUMBER = st.one_of(st.none(), st.integers(-5, 20).map(str), st.sampled_from(["", " 3 ", "abc", "1e3", "0x10", "-0",
                                                                             "9" * 40, "٣", "2.0", "+1"]),
                   st.text(max_size=6))


@SETTINGS
@given(rank=NUMBER, world=NUMBER, local=NUMBER, local_world=NUMBER)
def test_torchrun_variables(monkeypatch, rank, world, local, local_world):
    for name, value in (("RANK", rank), ("WORLD_SIZE", world), ("LOCAL_RANK", local), ("LOCAL_WORLD_SIZE", local_world)):
        if value is None or "\0" in value:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    try:
        r, w, lr, lw = environment.distributed()
        assert 0 <= r < w and 0 <= lr < lw <= w
    except EdgecnError as e:
        assert e.fix and "\n" not in e.message
        assert any(n in e.message for n in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"))


@SETTINGS
@given(value=VALUE)
def test_the_pte_runner_variable(places, monkeypatch, value):
    text = _value(places, value)
    if "\0" in text:
        return
    monkeypatch.setenv(environment.PTE_RUNNER, text)
    try:
        program = environment.program(environment.PTE_RUNNER)
        assert program.is_file() and os.access(program, os.X_OK)
    except EdgecnError as e:
        assert environment.PTE_RUNNER in e.message and e.fix
