"""onnxruntime runner for .onnx files (CPU execution provider)."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.runner.base import Runner, TensorInfo, register

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int8)": "int8",
              "tensor(uint8)": "uint8", "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(double)": "float64",
              "tensor(bool)": "bool", "tensor(int16)": "int16", "tensor(uint16)": "uint16"}


def _ort():
    try:
        import onnxruntime
        return onnxruntime
    except ImportError:
        raise EdgecnError("onnxruntime is not installed", "pip install onnxruntime") from None


def _info(a) -> TensorInfo:
    shape = tuple(s if isinstance(s, int) and s > 0 else 1 for s in a.shape)  # symbolic dims: batch 1
    return TensorInfo(a.name, shape, _ORT_TYPES.get(a.type, a.type))


@register(".onnx")
class OnnxRunner(Runner):
    """An .onnx file in onnxruntime; ``threads`` sets intra_op_num_threads."""

    runtime = "onnxruntime"

    def __init__(self, path, threads=None, content: bytes | None = None, profile: bool = False):
        super().__init__(path, threads, content)
        self._profile = profile

    def _session(self, profile_dir: str | None):
        """A session; with ``profile_dir``, onnxruntime's profiler writes its trace there."""
        ort = _ort()
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if profile_dir:
            opts.enable_profiling = True
            opts.profile_file_prefix = os.path.join(profile_dir, "ort")
        try:
            source = self.content if self.content is not None else str(self.path)
            return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for invalid graphs
            raise EdgecnError(f"onnxruntime could not load {str(self.path)!r}: {str(e).splitlines()[0]}",
                              "rebuild the artifact, or check the opset against your onnxruntime version") from e

    def _import(self):
        _ort()

    def _load(self):
        # The profiler's trace folder lives as long as the session and is removed with it.
        self._trace_dir = tempfile.TemporaryDirectory(prefix="edgecn-ort-") if self._profile else None
        self._sess = self._session(self._trace_dir.name if self._trace_dir else None)
        self._names = [i.name for i in self._sess.get_inputs()]
        self._out = [self._sess.get_outputs()[0].name]

    def _details(self):
        return [_info(i) for i in self._sess.get_inputs()], [_info(o) for o in self._sess.get_outputs()]

    def _run(self, arrays):
        return self._sess.run(self._out, dict(zip(self._names, arrays)))[0]

    def _unload(self):
        self._sess = None
        if getattr(self, "_trace_dir", None) is not None:
            self._trace_dir.cleanup()
            self._trace_dir = None

    def versions(self):
        return {"onnxruntime": _ort().__version__}

    def op_profile(self, feed, runs):
        """onnxruntime's own profiler in a second session: mean microseconds per node kind."""
        with tempfile.TemporaryDirectory(prefix="edgecn-ort-") as tmp:
            sess = self._session(tmp)
            feed_dict = dict(zip(self._names, self._arrange(feed)))
            for _ in range(runs):
                sess.run(self._out, feed_dict)
            trace = sess.end_profiling()
            with open(trace, encoding="utf-8") as f:
                events = json.load(f)
            del sess
        per_op: dict[str, list[float]] = {}
        for ev in events:
            if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
                op = ev.get("args", {}).get("op_name", "?")
                per_op.setdefault(op, []).append(ev["dur"] / 1000.0)
        return _summary(per_op, runs, "onnxruntime profiler")


def _summary(per_op: dict[str, list[float]], runs: int, source: str) -> dict:
    rows = [{"op": op, "count": len(v) // max(runs, 1) or len(v), "total_ms_per_run": sum(v) / max(runs, 1)}
            for op, v in per_op.items()]
    rows.sort(key=lambda r: -r["total_ms_per_run"])
    total = sum(r["total_ms_per_run"] for r in rows) or 1.0
    for r in rows:
        r["share"] = r["total_ms_per_run"] / total
    return {"available": True, "source": source, "runs": runs, "ops": rows}
