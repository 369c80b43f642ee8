"""ExecuTorch runner for .pte files.

ExecuTorch's Python runtime takes and returns torch tensors, so this module imports
torch -- lazily, inside ``activate()``, and only when a .pte is profiled. This is the one
place under edgecn/runner where torch may be imported; the .tflite, .onnx and engine paths
stay torch-free. On a device without torch, profile .pte files with ExecuTorch's own
executor_runner instead.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.runner.base import Runner, TensorInfo, register

_THREADPOOL_SET: list[int] = []  # the setting this process was given; it cannot change later


def set_threads(n: int) -> None:
    """Size ExecuTorch's thread pool; must happen once, before any program is loaded.

    Resizing after a program was loaded crashed the process (segfault, abort or hang) in 4 of 4 trials,
    so a second, different setting is refused: use one process per thread setting.
    """
    if _THREADPOOL_SET:
        if _THREADPOOL_SET[0] != n:
            raise EdgecnError(f"ExecuTorch's thread pool is already set to {_THREADPOOL_SET[0]} in this process",
                              "profile each thread setting in its own process (`--threads 1,2,4` does this)")
        return
    from executorch.extension.pybindings import portable_lib

    portable_lib._unsafe_reset_threadpool(n)
    _THREADPOOL_SET.append(n)


def _runtime():
    try:
        from executorch.runtime import Runtime
    except ImportError:
        raise EdgecnError("the ExecuTorch Python runtime is not installed",
                          "pip install executorch torch==2.13.0, or use ExecuTorch's executor_runner on the device") from None
    return Runtime.get()


# c10::ScalarType codes, as ExecuTorch's TensorInfo reports them.
_SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
                 11: "bool"}


def _info(meta, i: int, inputs: bool) -> TensorInfo:
    t = meta.input_tensor_meta(i) if inputs else meta.output_tensor_meta(i)
    code = t.dtype()
    dtype = _SCALAR_TYPES.get(int(code), str(code)) if isinstance(code, int) or str(code).isdigit() else str(code)
    return TensorInfo(f"{'input' if inputs else 'output'}_{i}", tuple(int(s) for s in t.sizes()), dtype)


@register(".pte")
class PteRunner(Runner):
    """A .pte program's ``forward`` in the ExecuTorch runtime (XNNPACK if the program was lowered to it)."""

    runtime = "executorch"

    def __init__(self, path, threads=None, etdump: bool = False):
        super().__init__(path, threads)
        self._etdump = etdump

    def _import(self):
        self._rt = _runtime()  # first: says what to install when ExecuTorch is missing
        if self.threads:
            set_threads(self.threads)
        import torch  # ExecuTorch's Python binding exchanges torch tensors

        self._torch = torch

    def _load(self):
        try:
            self._program = self._rt.load_program(self.path, enable_etdump=self._etdump)
            self._method = self._program.load_method("forward")
        except (RuntimeError, ValueError) as e:
            raise EdgecnError(f"ExecuTorch could not load {str(self.path)!r}: {str(e).splitlines()[0] if str(e) else e}",
                              "rebuild the artifact with the executorch version installed here") from e

    def _details(self):
        meta = self._method.metadata
        return ([_info(meta, i, True) for i in range(meta.num_inputs())],
                [_info(meta, i, False) for i in range(meta.num_outputs())])

    def _run(self, arrays):
        out = self._method.execute([self._torch.from_numpy(a) for a in arrays])
        return out[0].numpy()

    def _unload(self):
        self._method = self._program = None

    def versions(self):
        from importlib import metadata

        return {"executorch": metadata.version("executorch"), "torch": self._torch.__version__}

    def op_profile(self, feed, runs):
        """ETDump + Inspector; op names need an ETRecord beside the artifact (NAME.etrecord)."""
        etrecord = self.path.with_suffix(".etrecord")
        with PteRunner(self.path, self.threads, etdump=True) as r:
            for _ in range(runs):
                r.infer(feed)
            dump = Path(tempfile.mkdtemp(prefix="edgecn-etdump-")) / "run.etdump"
            r._program.write_etdump_result_to_file(str(dump), str(dump.with_suffix(".debug")))
        return _inspect(dump, etrecord if etrecord.exists() else None, runs)


def _inspect(dump: Path, etrecord: Path | None, runs: int) -> dict:
    from executorch.devtools import Inspector

    inspector = Inspector(etdump_path=str(dump), etrecord=str(etrecord) if etrecord else None)
    per_op: dict[str, list[float]] = {}
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for ev in block.events:
            if ev.perf_data is None or ev.name in ("Method::execute", "Program::load_method"):
                continue
            per_op.setdefault(ev.name, []).extend(float(t) for t in ev.perf_data.raw)
    from edgecn.runner.onnxrt import _summary

    result = _summary(per_op, runs, "ExecuTorch ETDump + Inspector")
    if etrecord is None:
        result["note"] = ("no ETRecord found beside the artifact: events are named by the runtime only "
                          "(delegate calls, kernels); lower with generate_etrecord=True and save it as NAME.etrecord "
                          "for operator names")
    return result
