"""What runs is what was verified: an artifact replaced at either side of its sha256 check.

Generated cases: each runtime kind, a replacement drawn from byte mutations of the artifact,
another artifact, an empty file, a link to another file or no file at all, made either just
after the check (the bytes checked must still be the ones that run: same top-1 on digits,
``verified``) or just before it (refused with one clear error).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecn.errors import EdgecnError
from edgecn.runner import profile as profile_mod
from edgecn.runner.profile import Options, profile_artifact

_at = st.one_of(st.floats(0, 1, allow_nan=False), st.integers(0, 511))
MUTATION = st.lists(st.tuples(st.sampled_from(["set", "del", "cut"]), _at, st.binary(min_size=1, max_size=8)),
                    min_size=1, max_size=4)
REPLACEMENT = st.one_of(st.tuples(st.just("mutated"), MUTATION),
                        st.sampled_from([("another artifact", None), ("empty", None), ("a link", None),
                                         ("removed", None)]))
PLAN = profile_mod.measure.Plan(runs=3, min_seconds=0.0, warmup=0, warmup_seconds=0.0)
_REFERENCE: dict[str, float] = {}


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, at, arg in ops:
        pos = (int(at * len(b)) if isinstance(at, float) else at) % max(1, len(b))
        if kind == "set":
            b[pos:pos + len(arg)] = arg
        elif kind == "del":
            del b[pos:pos + len(arg) * 8]
        else:
            del b[pos:]
    return bytes(b)


def _replace(path: Path, replacement, other: Path) -> None:
    kind, ops = replacement
    original = path.read_bytes()
    path.unlink()
    if kind == "mutated":
        path.write_bytes(_mutate(original, ops))
    elif kind == "another artifact":
        shutil.copy(other, path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "a link":
        path.symlink_to(other)


def _profile(path: Path) -> dict:
    return profile_artifact(path, Options(plan=PLAN, threads=1, accuracy=True, data="digits"))


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(suffix=st.sampled_from([".tflite", ".onnx", ".pte"]), replacement=REPLACEMENT,
       after_the_check=st.booleans())
def test_an_artifact_replaced_around_its_check(artifacts, native_env, monkeypatch, suffix, replacement,
                                               after_the_check):
    monkeypatch.setenv("EDGECN_CACHE_DIR", native_env["EDGECN_CACHE_DIR"])  # the session's native .pte runner
    if suffix not in _REFERENCE:
        _REFERENCE[suffix] = _profile(artifacts / f"model{suffix}")["accuracy"]["top1"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "build"
        shutil.copytree(artifacts, folder, ignore=shutil.ignore_patterns("int8", "steady"))
        art, other = folder / f"model{suffix}", artifacts / "steady" / "model.tflite"
        original = art.read_bytes()
        if after_the_check:
            real = profile_mod.read_verified

            def check_then_replace(path, force):
                checked = real(path, force)
                _replace(Path(path), replacement, other)
                return checked

            monkeypatch.setattr(profile_mod, "read_verified", check_then_replace)
            r = _profile(art)
            monkeypatch.setattr(profile_mod, "read_verified", real)
            assert r["integrity"]["verified"] and r["runs"] == 3
            assert r["accuracy"]["top1"] == _REFERENCE[suffix]  # the checked bytes ran, not the replacement
        else:
            _replace(art, replacement, other)
            if art.is_file() and not art.is_symlink() and art.read_bytes() == original:
                return  # a mutation that changed nothing
            with pytest.raises(EdgecnError) as e:
                _profile(art)
            assert e.value.fix and "\n" not in e.value.message
        leftovers = [p for p in Path(tmp).rglob("*") if p.name.startswith(".") or p.suffix in (".tmp", ".partial")]
        assert not leftovers
