"""Write the spec an artifact carries about itself (read back by ``edgecn.runner.spec``).

The build embeds it right after compiling, before the artifact is checked and scored, so the
bytes validated are the bytes shipped.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgecn.fileio import atomic_write_bytes, atomic_write_text
from edgecn.runner.spec import FORMAT, KEY, VERSION, sidecar


def artifact_spec(model_info: dict, data: str, labels: list[str], art, normalize: dict | None) -> dict:
    """The spec of one artifact: what model it is, what data it was trained on, how to feed it."""
    return {"format": FORMAT, "version": VERSION, "model": model_info, "data": data, "labels": list(labels),
            "backend": art.backend, "precision": art.precision,
            "input": {**art.input, "normalize": normalize}, "output": art.output}


def embed_spec(path: Path, spec: dict) -> Path | None:
    """Put ``spec`` into the artifact at ``path``; returns the sidecar written, if one was."""
    blob = json.dumps(spec, sort_keys=True)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        _tflite(path, blob.encode("utf-8"))
        return None
    if suffix == ".onnx":
        _onnx(path, blob)
        return None
    atomic_write_text(sidecar(path), blob + "\n")
    return sidecar(path)


def _tflite(path: Path, blob: bytes) -> None:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    model.metadata = [m for m in (model.metadata or []) if m.name not in (KEY, KEY.encode())]
    buffer = schema.BufferT()
    buffer.data = list(blob)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = KEY, len(model.buffers) - 1
    model.metadata.append(entry)
    atomic_write_bytes(path, bytes(flatbuffer_utils.convert_object_to_bytearray(model)))


def _onnx(path: Path, blob: str) -> None:
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=KEY, value=blob)
    atomic_write_bytes(path, model.SerializeToString())
