"""The spec an artifact carries about itself, so that a file copied alone still says how to feed it.

Torch-free. Where it lives:

- ``.tflite``: a TFLite metadata entry named ``edgecn_spec`` (the flatbuffer's own place for
  producer data; the interpreter ignores it).
- ``.onnx``: the model's ``metadata_props`` under the key ``edgecn_spec``.
- ``.pte`` and engines: a sidecar ``NAME.json`` beside the file (``model-int8.pte.json``);
  the ExecuTorch program format has no free-form metadata.

The spec (JSON): ``{"format": "edgecn-artifact-spec", "version": 1, "model": {...},
"data": "digits" | the training data's name, "labels": [...], "backend", "precision",
"input": {...}, "output": {...}}`` with ``input``/``output`` as in the manifest.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from edgecn.errors import EdgecnError
from edgecn.runner.check import proto_fields

FORMAT = "edgecn-artifact-spec"
VERSION = 1
KEY = "edgecn_spec"
MAX_SPEC_BYTES = 1 << 20


def sidecar(path: str | os.PathLike) -> Path:
    """Where the spec of an artifact without embedded metadata lives: ``NAME.json`` beside it."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def read_spec(path: str | os.PathLike) -> dict | None:
    """The spec ``path`` carries (embedded, else in its sidecar), or None when it has none."""
    p = Path(path)
    reader = EMBEDDED.get(p.suffix.lower())
    raw = _embedded(p, reader) if reader else None
    if raw is None and (sidecar(p).exists() or sidecar(p).is_symlink()):
        from edgecn.limits import read_file

        raw = read_file(sidecar(p), "artifact spec", MAX_SPEC_BYTES)
    if raw is None:
        return None
    from edgecn.limits import parse_json

    spec = parse_json(raw, "the spec carried by", str(p), "rebuild the artifact with `edgecn build`")
    if not isinstance(spec, dict) or spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise EdgecnError(f"the spec carried by {str(p)!r} is not an {FORMAT} version {VERSION}",
                          "rebuild the artifact with this edgecn version")
    return spec


# -- .tflite: the flatbuffer's metadata vector, read without the schema package -------------
# Model table fields: 4 buffers, 6 metadata. Metadata: 0 name, 1 buffer. Buffer: 0 data,
# 1 offset, 2 size (offset/size are used by files over 2 GB, data beyond the flatbuffer).

def _mapped(path: Path):
    """The file mapped read-only, or None when it is empty or cannot be mapped (check_artifact says why)."""
    try:
        with open(path, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (ValueError, OSError):
        return None


def _embedded(path: Path, reader) -> bytes | None:
    """``reader(mapped file)``, or None for an empty, unmappable or damaged file (check_artifact says why)."""
    b = _mapped(path)
    if b is None:
        return None
    with b:
        try:
            return reader(b)
        except (struct.error, IndexError, UnicodeDecodeError, ValueError):
            return None


def _tflite_metadata(b) -> bytes | None:
    root = _u32(b, 0)
    metadata, buffers = _field(b, root, 6), _field(b, root, 4)
    if metadata is None or buffers is None:
        return None
    for entry in _tables(b, metadata):
        name = _field(b, entry, 0)
        if name is None or _string(b, name) != KEY:
            continue
        index = _field(b, entry, 1)
        return _buffer(b, list(_tables(b, buffers))[_u32(b, index) if index is not None else 0])
    return None


def _u32(b, o: int) -> int:
    return struct.unpack_from("<I", b, o)[0]


def _field(b, table: int, index: int) -> int | None:
    """Absolute position of field ``index`` of the table at ``table``, or None if absent."""
    vtable = table - struct.unpack_from("<i", b, table)[0]
    size = struct.unpack_from("<H", b, vtable)[0]
    slot = 4 + 2 * index
    if slot + 2 > size:
        return None
    offset = struct.unpack_from("<H", b, vtable + slot)[0]
    return table + offset if offset else None


def _vector(b, at: int) -> tuple[int, int]:
    start = at + _u32(b, at)
    return start + 4, _u32(b, start)


def _tables(b, at: int):
    start, n = _vector(b, at)
    for i in range(n):
        pos = start + 4 * i
        yield pos + _u32(b, pos)


def _string(b, at: int) -> str:
    start, n = _vector(b, at)
    return bytes(b[start:start + n]).decode("utf-8")


def _buffer(b, table: int) -> bytes | None:
    data = _field(b, table, 0)
    if data is not None:
        start, n = _vector(b, data)
        return bytes(b[start:start + n]) if n <= MAX_SPEC_BYTES else None
    offset, size = _field(b, table, 1), _field(b, table, 2)
    if offset is None or size is None:
        return None
    off, n = struct.unpack_from("<Q", b, offset)[0], struct.unpack_from("<Q", b, size)[0]
    return bytes(b[off:off + n]) if n <= MAX_SPEC_BYTES else None


# -- .onnx: ModelProto.metadata_props (field 14: key 1, value 2), read from the protobuf wire format

def _onnx_metadata(b) -> bytes | None:
    for field, wire, start, end in proto_fields(b):
        if field != 14 or wire != 2:
            continue
        entry = {k: bytes(b[s:e]) for k, w, s, e in proto_fields(b, start, end) if w == 2}
        if entry.get(1) == KEY.encode():
            value = entry.get(2, b"")
            return value if len(value) <= MAX_SPEC_BYTES else None
    return None


EMBEDDED = {".tflite": _tflite_metadata, ".onnx": _onnx_metadata}
"""Formats that carry the spec inside the file; the others carry it in a sidecar ``NAME.json``."""
