"""The compressed weight file (``.edc``): one file, Huffman-coded, checksummed, written atomically.

Layout (little-endian)::

    magic      8 bytes   b"EDGECNDC"
    version    uint16    FORMAT_VERSION
    hdr_len    uint32    length of the JSON header
    header     hdr_len bytes of UTF-8 JSON: {"config": edgecn_config, "tensors": [...]}
    payload    the binary sections the header points into (offset, length)
    sha256     32 bytes over everything above

Each tensor entry names its state-dict key, shape, dtype and encoding: ``raw`` (bytes as
they are: biases, BatchNorm, index buffers) or ``coded`` (float32 codebook, Huffman code
lengths and bitstreams for codebook indices and position gaps; see ``sparse``). The parser
checks the checksum first and then bounds-checks every field before it reads, so arbitrary
bytes give an ``EdgecnError``, never a crash or a hang.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from edgecn.compress import huffman
from edgecn.compress.sparse import CodedTensor, decode_tensor, encode_tensor
from edgecn.errors import EdgecnError
from edgecn.fileio import atomic_write_bytes

MAGIC = b"EDGECNDC"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sHI")
_DIGEST = 32
MAX_NUMEL = 1 << 27
"""Largest tensor the parser accepts (512 MiB of float32); bounds what a header can make it allocate."""

_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int64": np.int64,
           "int32": np.int32, "uint8": np.uint8, "int8": np.int8, "bool": np.bool_}


def pack(config: dict, tensors: dict[str, np.ndarray], coded_names: set[str]) -> bytes:
    """Serialise ``tensors`` (name -> array); names in ``coded_names`` are sparse/codebook-coded.

    A tensor in ``coded_names`` with more than 256 distinct non-zero values is stored raw.
    """
    payload = bytearray()

    def section(data: bytes) -> list[int]:
        payload.extend(data)
        return [len(payload) - len(data), len(data)]

    entries = []
    for name, array in tensors.items():
        array = np.asarray(array, order="C")  # ascontiguousarray would turn 0-d into 1-d
        dtype = array.dtype.name
        if dtype not in _DTYPES:
            raise ValueError(f"tensor {name!r} has unsupported dtype {dtype}")
        entry = {"name": name, "shape": list(array.shape), "dtype": dtype}
        coded = encode_tensor(array) if name in coded_names and dtype == "float32" else None
        if coded is None:
            entry.update(encoding="raw", data=section(array.astype(array.dtype.newbyteorder("<")).tobytes()))
        else:
            entry.update(encoding="coded", count=coded.count, codebook=section(coded.codebook.astype("<f4").tobytes()),
                         index_lengths=section(coded.index_lengths.tobytes()),
                         index_stream=section(coded.index_stream), index_nbits=coded.index_nbits,
                         gap_bits=coded.gap_bits, gap_lengths=section(coded.gap_lengths.tobytes()),
                         gap_symbols=coded.gap_symbols, gap_stream=section(coded.gap_stream),
                         gap_nbits=coded.gap_nbits)
        entries.append(entry)
    header = json.dumps({"config": config, "tensors": entries}, separators=(",", ":")).encode("utf-8")
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + bytes(payload)
    return body + hashlib.sha256(body).digest()


def write(path: str | os.PathLike, config: dict, tensors: dict[str, np.ndarray], coded_names: set[str]) -> Path:
    """``pack`` and write atomically: an interrupted or failed write leaves ``path`` as it was."""
    data = pack(config, tensors, coded_names)
    atomic_write_bytes(path, data)
    return Path(path)


def unpack(data: bytes, source: str = "compressed file") -> tuple[dict, dict[str, np.ndarray]]:
    """Parse a compressed file's bytes into ``(config, {name: array})``.

    Raises:
        EdgecnError: bad magic, unknown version, checksum mismatch, truncation or any
            inconsistency, naming ``source``.
    """
    fix = "re-create it with `edgecn condense` (an interrupted copy or a different file?)"
    if len(data) < _PREFIX.size + _DIGEST:
        raise EdgecnError(f"{source} is truncated ({len(data)} bytes)", fix)
    magic, version, hdr_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise EdgecnError(f"{source} is not an edgecn compressed weight file (bad magic)",
                          "pass a file written by `edgecn condense` for a SqueezeNet-style model")
    if version != FORMAT_VERSION:
        raise EdgecnError(f"{source} has format version {version}, this edgecn reads {FORMAT_VERSION}",
                          "use the edgecn version that wrote it")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise EdgecnError(f"{source} is corrupt or truncated (checksum mismatch)", fix)
    try:
        return _parse_body(body, hdr_len)
    except (_Corrupt, huffman.HuffmanError) as e:
        raise EdgecnError(f"{source} is corrupt ({e})", fix) from e


class _Corrupt(ValueError):
    pass


def _parse_body(body: bytes, hdr_len: int) -> tuple[dict, dict[str, np.ndarray]]:
    start = _PREFIX.size
    if hdr_len > len(body) - start:
        raise _Corrupt("header runs past the end of the file")
    from edgecn.errors import EdgecnError
    from edgecn.limits import parse_json

    try:
        header = parse_json(bytes(body[start:start + hdr_len]), "header", "", "")
    except EdgecnError as e:
        raise _Corrupt(e.what.replace("header ''", "header")) from e
    payload = memoryview(body)[start + hdr_len:]
    if not isinstance(header, dict) or not isinstance(header.get("config"), dict) \
            or not isinstance(header.get("tensors"), list):
        raise _Corrupt("header lacks config or tensors")
    tensors = {}
    for entry in header["tensors"]:
        name, array = _parse_tensor(entry, payload)
        if name in tensors:
            raise _Corrupt(f"tensor {name!r} appears twice")
        tensors[name] = array
    return header["config"], tensors


def _int(entry: dict, key: str, lo: int = 0, hi: int = 1 << 62) -> int:
    value = entry.get(key)
    if type(value) is not int or not lo <= value <= hi:
        raise _Corrupt(f"field {key!r} is missing or out of range")
    return value


def _section(entry: dict, key: str, payload: memoryview) -> bytes:
    ref = entry.get(key)
    if not (isinstance(ref, list) and len(ref) == 2 and all(type(v) is int and v >= 0 for v in ref)) \
            or ref[0] + ref[1] > len(payload):
        raise _Corrupt(f"section {key!r} is missing or points outside the file")
    return bytes(payload[ref[0]:ref[0] + ref[1]])


def _parse_tensor(entry, payload: memoryview) -> tuple[str, np.ndarray]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise _Corrupt("a tensor entry has no name")
    shape = entry.get("shape")
    if not isinstance(shape, list) or len(shape) > 8 or not all(type(d) is int and 0 <= d <= MAX_NUMEL for d in shape):
        raise _Corrupt(f"tensor {entry['name']!r} has an invalid shape")
    numel = int(np.prod(shape, dtype=np.float64))
    if numel > MAX_NUMEL or not isinstance(entry.get("dtype"), str) or entry["dtype"] not in _DTYPES:
        raise _Corrupt(f"tensor {entry['name']!r} is too large or has an unknown dtype")
    dtype = np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<")
    if entry.get("encoding") == "raw":
        data = _section(entry, "data", payload)
        if len(data) != numel * dtype.itemsize:
            raise _Corrupt(f"tensor {entry['name']!r} has {len(data)} bytes for shape {shape}")
        return entry["name"], np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(shape)
    if entry.get("encoding") != "coded" or entry["dtype"] != "float32":
        raise _Corrupt(f"tensor {entry['name']!r} has an unknown encoding")
    return entry["name"], decode_tensor(_coded(entry, tuple(shape), numel, payload))


def _coded(entry: dict, shape: tuple[int, ...], numel: int, payload: memoryview) -> CodedTensor:
    codebook = _section(entry, "codebook", payload)
    if len(codebook) % 4:
        raise _Corrupt(f"tensor {entry['name']!r} has a ragged codebook")
    return CodedTensor(
        shape=shape, count=_int(entry, "count", hi=numel),
        codebook=np.frombuffer(codebook, dtype="<f4").astype(np.float32),
        index_lengths=np.frombuffer(_section(entry, "index_lengths", payload), dtype=np.uint8),
        index_stream=_section(entry, "index_stream", payload), index_nbits=_int(entry, "index_nbits"),
        gap_bits=_int(entry, "gap_bits", hi=8),
        gap_lengths=np.frombuffer(_section(entry, "gap_lengths", payload), dtype=np.uint8),
        gap_symbols=_int(entry, "gap_symbols"), gap_stream=_section(entry, "gap_stream", payload),
        gap_nbits=_int(entry, "gap_nbits"))


def read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and parse the compressed file at ``path`` (see ``unpack``)."""
    path = Path(path)
    if not path.is_file():
        raise EdgecnError(f"compressed weight file {str(path)!r} does not exist",
                          "check the path (these files are written by `edgecn condense`)")
    return unpack(path.read_bytes(), f"compressed weight file {str(path)!r}")
