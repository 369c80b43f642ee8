"""Property tests of every parser that reads user files: arbitrary bytes and mutations of valid files.

Whatever the input, a parser returns or raises EdgecnError: no other exception, no crash, no
hang (each example has a deadline). Mutations start from real files (a shipped target, the
session build's manifest and artifacts, a real compressed weight file) so that most of them
get past the first check and exercise the deeper ones.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecn.errors import EdgecnError
from robust_helpers import COUNTS, REPO

FUZZ = settings(max_examples=150, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# A mutation: overwrite, delete or insert bytes, or cut the file; positions are fractions of
# the length, half of them drawn from the first 512 bytes where headers and offsets live.
_at = st.one_of(st.floats(0, 1, allow_nan=False), st.integers(0, 511))
_op = st.one_of(
    st.tuples(st.just("set"), _at, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("del"), _at, st.integers(1, 64)),
    st.tuples(st.just("ins"), _at, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("cut"), _at, st.just(0)),
)
MUTATIONS = st.lists(_op, min_size=1, max_size=6)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, at, arg in ops:
        pos = (int(at * len(b)) if isinstance(at, float) else at) % max(1, len(b))
        if kind == "set":
            b[pos:pos + len(arg)] = arg
        elif kind == "del":
            del b[pos:pos + arg]
        elif kind == "ins":
            b[pos:pos] = arg
        else:
            del b[pos:]
    return bytes(b)


def only_edgecn_errors(fn, *args):
    COUNTS["mutations"] += 1
    try:
        fn(*args)
    except EdgecnError as e:
        assert e.fix, f"error without a fix: {e.message}"


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# -- target files ---------------------------------------------------------------------------------
def _load_target_bytes(scratch: Path, data: bytes):
    from edgecn.targets import load_target_file

    path = scratch / "fuzz.toml"
    path.write_bytes(data)
    load_target_file(path)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_target_parser_on_arbitrary_bytes(scratch, data):
    only_edgecn_errors(_load_target_bytes, scratch, data)


@FUZZ
@given(ops=MUTATIONS, which=st.sampled_from(sorted(p.name for p in (REPO / "targets").glob("*.toml"))))
def test_target_parser_on_mutated_targets(scratch, ops, which):
    text = (REPO / "targets" / which).read_bytes().replace(f'name = "{which[:-5]}"'.encode(), b'name = "fuzz"')
    only_edgecn_errors(_load_target_bytes, scratch, mutate(text, ops))


_toml_value = st.one_of(st.integers(-5, 5), st.booleans(), st.text(max_size=6), st.lists(st.text(max_size=6), max_size=3),
                        st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(), max_size=3))


@FUZZ
@given(key=st.sampled_from(["name", "description", "arch", "cpu", "backends", "precisions", "aliases", "threads",
                            "runtimes", "calibration", "bogus"]), value=_toml_value,
       table=st.sampled_from(["", "lowering", "tensorrt", "tflite", "executorch"]))
def test_target_parser_on_wrongly_typed_fields(scratch, key, value, table):
    """Valid TOML with one field of an arbitrary type (in the top level or in a table)."""
    import tomllib

    base = tomllib.loads((REPO / "targets" / "host.toml").read_text())
    base["name"] = "fuzz"
    (base.setdefault(table, {}) if table else base)[key] = value
    only_edgecn_errors(_load_target_bytes, scratch, _toml(base).encode())


def _toml(table: dict) -> str:
    def lit(v):
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()
    top = [f"{k} = {lit(v)}" for k, v in table.items() if not isinstance(v, dict)]
    subs = [f"[{k}]\n" + "\n".join(f"{kk} = {lit(vv)}" for kk, vv in v.items()) for k, v in table.items() if isinstance(v, dict)]
    return "\n".join(top + subs) + "\n"


# -- manifests ------------------------------------------------------------------------------------
def _load_manifest_bytes(scratch: Path, data: bytes):
    from edgecn.runner.manifest import Manifest

    path = scratch / "manifest.json"
    path.write_bytes(data)
    Manifest.load(path)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_manifest_parser_on_arbitrary_bytes(scratch, data):
    only_edgecn_errors(_load_manifest_bytes, scratch, data)


@FUZZ
@given(ops=MUTATIONS)
def test_manifest_parser_on_mutated_bytes(scratch, build_dir, ops):
    only_edgecn_errors(_load_manifest_bytes, scratch, mutate((build_dir / "manifest.json").read_bytes(), ops))


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                     max_leaves=8)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@FUZZ
@given(data=st.data())
def test_manifest_parser_on_replaced_subtrees(scratch, build_dir, data):
    """Valid JSON where one value anywhere in the real manifest is replaced by arbitrary JSON."""
    doc = json.loads((build_dir / "manifest.json").read_text())
    paths = list(_paths(doc))[1:]
    where = data.draw(st.sampled_from(paths))
    node = doc
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = data.draw(_json)
    only_edgecn_errors(_load_manifest_bytes, scratch, json.dumps(doc).encode())


# -- compressed weight files ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def edc(goods) -> bytes:
    return (goods / "light.edc").read_bytes()


def _unpack(data: bytes):
    from edgecn.compress import format as fmt

    fmt.unpack(data, "fuzzed file")


def _reseal(data: bytes) -> bytes:
    """Recompute the trailing checksum so the mutation reaches the header and section checks."""
    body = data[:-32] if len(data) > 32 else data
    return body + hashlib.sha256(body).digest()


@FUZZ
@given(data=st.binary(max_size=4096))
def test_compressed_parser_on_arbitrary_bytes(data):
    only_edgecn_errors(_unpack, data)
    only_edgecn_errors(_unpack, b"EDGECNDC\x01\x00" + data)


@FUZZ
@given(ops=MUTATIONS)
def test_compressed_parser_on_mutated_files(edc, ops):
    only_edgecn_errors(_unpack, mutate(edc, ops))


@FUZZ
@given(ops=MUTATIONS)
def test_compressed_parser_on_resealed_mutations(edc, ops):
    only_edgecn_errors(_unpack, _reseal(mutate(edc, ops)))


@FUZZ
@given(data=st.data())
def test_compressed_parser_on_edited_headers(edc, data):
    """Resealed files whose JSON header has one tensor field replaced by arbitrary JSON."""
    import struct

    from edgecn.compress import format as fmt

    _, _, hdr_len = struct.unpack_from("<8sHI", edc)
    start = struct.calcsize("<8sHI")
    header = json.loads(edc[start:start + hdr_len])
    entry = data.draw(st.sampled_from(header["tensors"]))
    key = data.draw(st.sampled_from(sorted(entry)))
    entry[key] = data.draw(_json | st.lists(st.integers(-2, 1 << 40), max_size=3) | st.integers(-1, 1 << 62))
    new = json.dumps(header).encode()
    body = struct.pack("<8sHI", fmt.MAGIC, fmt.FORMAT_VERSION, len(new)) + new + edc[start + hdr_len:-32]
    only_edgecn_errors(_unpack, body + hashlib.sha256(body).digest())


# -- the runner's artifact pre-checks -------------------------------------------------------------
def _check_bytes(scratch: Path, suffix: str, data: bytes):
    from edgecn.runner.check import check_artifact

    path = scratch / f"fuzz{suffix}"
    path.write_bytes(data)
    check_artifact(path)


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".tflite", ".pte", ".onnx", ".engine"]))
def test_artifact_checks_on_arbitrary_bytes(scratch, data, suffix):
    only_edgecn_errors(_check_bytes, scratch, suffix, data)


@FUZZ
@given(ops=MUTATIONS, suffix=st.sampled_from([".tflite", ".pte", ".onnx"]))
def test_artifact_checks_on_mutated_artifacts(scratch, build_dir, ops, suffix):
    good = (build_dir / f"condensenet-light-fp32{suffix}").read_bytes()
    only_edgecn_errors(_check_bytes, scratch, suffix, mutate(good, ops))


@FUZZ
@given(ops=MUTATIONS)
def test_onnx_walk_without_onnx_on_mutated_files(build_dir, ops):
    """The fallback protobuf walk that devices without the onnx package use."""
    from edgecn.runner.check import _walk_protobuf

    good = (build_dir / "condensenet-light-fp32.onnx").read_bytes()
    only_edgecn_errors(_walk_protobuf, Path("fuzz.onnx"), mutate(good, ops))
