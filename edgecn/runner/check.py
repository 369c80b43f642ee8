"""Structural checks of artifacts before a runtime sees them: a damaged file must give an error, not a crash.

Torch-free. Each check reads only what it must (headers, offsets, bounds) and raises
EdgecnError naming the file and what is wrong.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Callable

from edgecn.errors import EdgecnError

_CHECKS: dict[str, Callable[[Path, bytes], None]] = {}
_FIX = "rebuild or re-copy the artifact (it is truncated, damaged or not what its name says)"
MIN_ENGINE_BYTES = 1024  # a serialized TensorRT engine is never this small


def _check(*suffixes: str):
    def add(fn):
        for s in suffixes:
            _CHECKS[s] = fn
        return fn

    return add


def check_artifact(path: str | os.PathLike, content: bytes | None = None) -> None:
    """Raise EdgecnError if ``path`` is missing, empty, or structurally broken for its format.

    With ``content`` (the bytes read from ``path`` once), those bytes are checked, not the file.
    """
    import mmap

    path = Path(path)
    if content is not None:
        if not content:
            raise EdgecnError(f"artifact {str(path)!r} is empty (0 bytes)", _FIX)
        check = _CHECKS.get(path.suffix.lower())
        if check is not None:
            check(path, content)
        return
    if not path.exists():
        raise EdgecnError(f"artifact {str(path)!r} does not exist", "pass the path of a built artifact")
    if not path.is_file():
        raise EdgecnError(f"artifact {str(path)!r} is not a regular file", "pass the path of a built artifact file")
    if path.stat().st_size == 0:
        raise EdgecnError(f"artifact {str(path)!r} is empty (0 bytes)", _FIX)
    check = _CHECKS.get(path.suffix.lower())
    if check is not None:  # mapped, not read: a 2 GB file that is not a model costs nothing to refuse
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as b:
            check(path, b)


def _bad(path: Path, what: str) -> EdgecnError:
    return EdgecnError(f"artifact {str(path)!r} is not a valid {path.suffix} file: {what}", _FIX)


# -- FlatBuffers (TFLite and ExecuTorch are both flatbuffers) ----------------------------------
def _u32(b: bytes, at: int) -> int:
    return struct.unpack_from("<I", b, at)[0]


def _table_fields(path: Path, b: bytes, table: int) -> tuple[int, list[int]]:
    """Bounds-check a flatbuffer table at ``table``; returns (table size, field offsets)."""
    n = len(b)
    if table < 0 or table + 4 > n:
        raise _bad(path, f"table offset {table} outside the file")
    vtable = table - struct.unpack_from("<i", b, table)[0]
    if vtable < 0 or vtable + 4 > n:
        raise _bad(path, f"vtable offset {vtable} outside the file")
    vsize, tsize = struct.unpack_from("<HH", b, vtable)
    if vsize < 4 or vsize % 2 or vtable + vsize > n or table + tsize > n or tsize < 4:
        raise _bad(path, "vtable or table size out of bounds")
    fields = list(struct.unpack_from(f"<{(vsize - 4) // 2}H", b, vtable + 4))
    # A field starts after the table's vtable offset and inside the table; fields narrower than
    # 4 bytes (a ubyte or short) may sit in the table's last bytes.
    if any(f and not 4 <= f < tsize for f in fields):
        raise _bad(path, "field offset beyond its table")
    return tsize, fields


def _vector(path: Path, b: bytes, table: int, field_off: int, elem: int) -> tuple[int, int]:
    """Follow a vector field; returns (start of data, length), bounds-checked."""
    at = table + field_off
    vec = at + _u32(b, at)
    if vec + 4 > len(b):
        raise _bad(path, f"vector at {vec} outside the file")
    length = _u32(b, vec)
    if vec + 4 + length * elem > len(b):
        raise _bad(path, f"vector of {length} elements runs past the end of the file")
    return vec + 4, length


def _root(path: Path, b: bytes, ident: bytes | None) -> int:
    if len(b) < 16:
        raise _bad(path, f"only {len(b)} bytes")
    if ident is not None and b[4:8] != ident:
        raise _bad(path, f"file identifier is {b[4:8]!r}, expected {ident!r}")
    return _u32(b, 0)


@_check(".tflite")
def check_tflite(path: Path, b: bytes) -> None:
    """TFLite Model: identifier "TFL3", root table, and its vectors (operator_codes, subgraphs, buffers)."""
    root = _root(path, b, b"TFL3")
    tsize, fields = _table_fields(path, b, root)
    # Model fields: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers.
    if len(fields) < 3 or not fields[2]:
        raise _bad(path, "model has no subgraphs")
    for idx in (1, 2, 4):
        if idx < len(fields) and fields[idx]:
            start, length = _vector(path, b, root, fields[idx], 4)
            for k in range(length):
                slot = start + 4 * k
                _table_fields(path, b, slot + _u32(b, slot))
    _, count = _vector(path, b, root, fields[2], 4)
    if count == 0:
        raise _bad(path, "model has no subgraphs")


@_check(".pte")
def check_pte(path: Path, b: bytes) -> None:
    """ExecuTorch program: "ET" + version at bytes 4..8, extended header sizes within the file."""
    n = len(b)
    root = _root(path, b, None)
    if b[4:6] != b"ET" or not b[6:8].isdigit():
        raise _bad(path, f"header magic is {b[4:8]!r}, expected b'ET' and a two-digit version")
    if b[8:12] == b"eh00":
        hlen = _u32(b, 12)
        if hlen < 24 or 8 + hlen > n:
            raise _bad(path, f"extended header length {hlen} out of bounds")
        program_size, segment_base = struct.unpack_from("<QQ", b, 16)
        if program_size > n or segment_base > n:
            raise _bad(path, f"header says {max(program_size, segment_base)} bytes, file has {n}")
        if hlen >= 32:
            segment_size = struct.unpack_from("<Q", b, 32)[0]
            if segment_base + segment_size > n:
                raise _bad(path, f"segments end at byte {segment_base + segment_size}, file has {n} (truncated)")
    if root + 4 > n:
        raise _bad(path, "root table offset outside the file")
    _table_fields(path, b, root)


@_check(".onnx")
def check_onnx(path: Path, b: bytes) -> None:
    """A walk over the top-level fields, then a protobuf parse with onnx when it is installed."""
    _walk_protobuf(path, b)
    try:
        import onnx
    except ImportError:
        return
    try:
        model = onnx.load_model_from_string(bytes(b))
    except Exception as e:  # DecodeError and friends: the protobuf is damaged
        raise _bad(path, f"protobuf does not parse ({type(e).__name__})") from e
    if not model.HasField("graph") or not model.graph.node:
        raise _bad(path, "no graph")


def proto_fields(b, start: int = 0, end: int | None = None):
    """``(field, wire type, start, end)`` of each field of the protobuf message in ``b[start:end]``.

    Reads the wire format only (no schema, no copy); raises ValueError where it is malformed.
    """
    at, end = start, len(b) if end is None else end
    while at < end:
        key, at = _varint(b, at, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            _, nxt = _varint(b, at, end)
        elif wire in (1, 5):
            nxt = at + (8 if wire == 1 else 4)
        elif wire == 2:
            size, at = _varint(b, at, end)
            nxt = at + size
        else:
            raise ValueError(f"unknown wire type {wire}")
        if nxt > end:
            raise ValueError("field runs past the end of the file")
        yield field, wire, at, nxt
        at = nxt


def _varint(b, at: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= end or shift > 63:
            raise ValueError("truncated varint")
        byte = b[at]
        value |= (byte & 0x7F) << shift
        at += 1
        shift += 7
        if not byte & 0x80:
            return value, at


def _walk_protobuf(path: Path, b) -> None:
    """ModelProto's top-level fields must tile the file exactly; field 7 (graph) must be there."""
    try:
        seen = {field for field, _, _, _ in proto_fields(b)}
    except ValueError as e:
        raise _bad(path, str(e)) from None
    if 7 not in seen:
        raise _bad(path, "no graph")


@_check(".engine", ".plan")
def check_engine(path: Path, b: bytes) -> None:
    """TensorRT engines are opaque; only their size can be judged before deserialization."""
    if len(b) < MIN_ENGINE_BYTES:
        raise _bad(path, f"only {len(b)} bytes; a TensorRT engine is larger")
