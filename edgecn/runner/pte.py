"""ExecuTorch runner for .pte files, with two engines.

* ``native``: edgecn's C++ runner (``edgecn.runner.native``), built against the C++ libraries the
  executorch wheel ships and driven over a pipe. No torch anywhere: this is the device path.
* ``python``: ExecuTorch's Python binding, which exchanges torch tensors and links libtorch, so
  torch is imported here -- lazily, inside ``activate()``. With an ETRecord beside the artifact its
  per-op table names operators as the model did.

Both record per-op timings in an ETDump; the native one is read by ``edgecn.runner.etdump``.

``auto`` (the default; ``$EDGECN_PTE_ENGINE`` or ``--pte-engine`` choose otherwise) takes the
Python binding where torch and executorch are both installed (a development machine), and the
native runner everywhere else, compiling it on first use when the executorch libraries and a
C++ compiler are here. Both run the same program with the same XNNPACK kernels; their outputs
agree (tested).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.runner import native
from edgecn.runner.base import Runner, TensorInfo, register
from edgecn.runner.quiet import native_stderr_filtered

ENGINES = ("auto", "native", "python")
ENV_ENGINE = "EDGECN_PTE_ENGINE"
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
        raise EdgecnError("the ExecuTorch Python runtime is not importable here (it needs torch)",
                          f"use the native engine instead: {native.INSTALL}, then `{native.BUILD}`") from None
    return Runtime.get()


# c10::ScalarType codes, as ExecuTorch's TensorInfo reports them.
_SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
                 11: "bool"}


def _info(meta, i: int, inputs: bool) -> TensorInfo:
    t = meta.input_tensor_meta(i) if inputs else meta.output_tensor_meta(i)
    code = t.dtype()
    dtype = _SCALAR_TYPES.get(int(code), str(code)) if isinstance(code, int) or str(code).isdigit() else str(code)
    return TensorInfo(f"{'input' if inputs else 'output'}_{i}", tuple(int(s) for s in t.sizes()), dtype)


def choose_engine(requested: str | None = None) -> str:
    """``native`` or ``python`` for ``requested`` (None: ``$EDGECN_PTE_ENGINE``, else ``auto``)."""
    engine = requested or os.environ.get(ENV_ENGINE) or "auto"
    if engine not in ENGINES:
        raise EdgecnError(f"unknown .pte engine {engine!r}", f"use one of {', '.join(ENGINES)} (--pte-engine or ${ENV_ENGINE})")
    if engine != "auto":
        return engine
    has = importlib.util.find_spec
    return "python" if has("torch") is not None and has("executorch") is not None else "native"


def native_binary() -> Path:
    """The built native runner; compiled now (once, a few seconds) when it is not built yet."""
    binary = native.find_binary()
    if binary is not None:
        return binary
    fetching = "" if native.executorch_root() else f"fetching the executorch {native.VERSION} libraries and "
    print(f"edgecn: {fetching}compiling the native .pte runner for this machine (once; `{native.BUILD}` does it "
          "ahead of time)", file=sys.stderr)
    return native.build()


@register(".pte")
class PteRunner(Runner):
    """A .pte program's ``forward`` in the ExecuTorch runtime (XNNPACK if the program was lowered to it).

    Args:
        engine: "native", "python" or "auto" (None: ``$EDGECN_PTE_ENGINE``, else auto); see the module.
        etdump: record an ETDump (per-op timings).
    """

    runtime = "executorch"

    def __init__(self, path, threads=None, etdump: bool = False, engine: str | None = None):
        super().__init__(path, threads)
        self._etdump = etdump
        self.engine = choose_engine(engine)

    def _import(self):
        if self.engine == "native":
            self._binary = native_binary()
            return
        # Importing the binding prints torchao's "Failed to load ..._C_mxfp8...so", a torch
        # deprecation line and ExecuTorch's cpuinfo probe to fd 2: none of them is about the model.
        with native_stderr_filtered():
            self._rt = _runtime()  # first: says what to install when ExecuTorch is missing
            if self.threads:
                set_threads(self.threads)
            import torch  # ExecuTorch's Python binding exchanges torch tensors

        self._torch = torch

    def _load(self):
        if self.engine == "native":
            self._process = NativeProcess(self._binary, self.path, self.threads)
            return
        try:
            with native_stderr_filtered(keep=lambda line: line.startswith("E ")):
                self._program = self._rt.load_program(self.path, enable_etdump=self._etdump)
                self._method = self._program.load_method("forward")
        except (RuntimeError, ValueError) as e:
            raise EdgecnError(f"ExecuTorch could not load {str(self.path)!r}: {str(e).splitlines()[0] if str(e) else e}",
                              "rebuild the artifact with the executorch version installed here") from e

    def _details(self):
        if self.engine == "native":
            return self._process.inputs, self._process.outputs
        meta = self._method.metadata
        return ([_info(meta, i, True) for i in range(meta.num_inputs())],
                [_info(meta, i, False) for i in range(meta.num_outputs())])

    def _run(self, arrays):
        if self.engine == "native":
            return self._process.run(arrays)[0]
        out = self._method.execute([self._torch.from_numpy(a) for a in arrays])
        return out[0].numpy()

    def _runtime_seconds(self, wall: float) -> float:
        # The native runner times Method::execute itself; the pipe is not the runtime's cost.
        return self._process.seconds if self.engine == "native" else wall

    def _unload(self):
        if self.engine == "native":
            if getattr(self, "_process", None) is not None:
                self._process.close()
            self._process = None
        else:
            self._method = self._program = None

    def versions(self):
        found = {"executorch": _installed_version()}
        if self.engine == "native":
            return {**found, "pte engine": f"native ({self._binary.name})"}
        return {**found, "torch": self._torch.__version__, "pte engine": "python"}

    def op_profile(self, feed, runs):
        """Per-op timings from an ETDump of ``runs`` inferences in a second, tracing instance."""
        if self.engine == "native":
            from edgecn.runner.etdump import op_profile

            with tempfile.TemporaryDirectory(prefix="edgecn-etdump-") as tmp:
                dump = Path(tmp) / "run.etdp"
                process = NativeProcess(self._binary, self.path, self.threads, etdump=dump)
                try:
                    for _ in range(runs):
                        process.run([feed])
                finally:
                    process.close()
                if not dump.exists():
                    raise EdgecnError("the native .pte runner wrote no ETDump", f"rebuild it: `{native.BUILD} --force`")
                result = op_profile(dump, runs, "ExecuTorch ETDump (native runner)")
            result["note"] = ("events are named by the runtime (delegate calls, XNNPACK operators, kernels); "
                              "operator names from an ETRecord need ExecuTorch's Python devtools (--pte-engine python)")
            return result
        etrecord = self.path.with_suffix(".etrecord")
        with tempfile.TemporaryDirectory(prefix="edgecn-etdump-") as tmp:  # nothing left behind in /tmp
            dump = Path(tmp) / "run.etdump"
            with PteRunner(self.path, self.threads, etdump=True, engine="python") as r:
                for _ in range(runs):
                    r.infer(feed)
                r._program.write_etdump_result_to_file(str(dump), str(dump.with_suffix(".debug")))
            return _inspect(dump, etrecord if etrecord.exists() else None, runs)


def _installed_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        return "unknown"


class NativeProcess:
    """One ``edgecn-pte-runner`` process holding one loaded program; see pte_runner.cpp for the protocol."""

    def __init__(self, binary: Path, path: Path, threads: int | None, etdump: Path | None = None):
        argv = ([str(binary), str(path)] + (["--threads", str(threads)] if threads else [])
                + (["--etdump", str(etdump)] if etdump else []))
        # ExecuTorch's own log lines, shown only when something fails (all of them with EDGECN_RUNTIME_LOGS=1)
        self._log = tempfile.TemporaryFile()
        verbose = os.environ.get("EDGECN_RUNTIME_LOGS") == "1"
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=None if verbose else self._log)
        self.seconds = 0.0
        line = self._proc.stdout.readline()
        try:
            hello = json.loads(line)
        except ValueError:
            died = self._died(f"the native .pte runner stopped while loading {str(path)!r}")
            self.close()
            raise EdgecnError(str(died), "re-copy or rebuild the artifact (it may be damaged); if it loads "
                                         f"with --pte-engine python, rebuild the runner: `{native.BUILD} --force`") from None
        if not hello.get("ok"):
            self.close()
            raise EdgecnError(f"ExecuTorch could not load {str(path)!r}: {hello.get('error')}",
                              "the file is damaged or was written by another executorch version: re-copy it, "
                              f"or rebuild it with executorch {_installed_version()}")
        self.inputs = [TensorInfo(f"input_{i}", tuple(t["shape"]), t["dtype"]) for i, t in enumerate(hello["inputs"])]
        self.outputs = [TensorInfo(f"output_{i}", tuple(t["shape"]), t["dtype"]) for i, t in enumerate(hello["outputs"])]
        self._out_bytes = [int(t["nbytes"]) for t in hello["outputs"]]
        self.threads = hello.get("threads")

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        try:
            self._proc.stdin.write(b"R" + b"".join(a.tobytes() for a in arrays))
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise self._died("the native .pte runner exited") from None
        status = self._proc.stdout.read(1)
        if status == b"E":
            (n,) = struct.unpack("=I", self._read(4))
            raise RuntimeError(self._read(n).decode(errors="replace"))
        if status != b"K":
            raise self._died("the native .pte runner stopped during an inference")
        (self.seconds,) = struct.unpack("=d", self._read(8))
        return [np.frombuffer(self._read(n), dtype=t.dtype).reshape(t.shape) for n, t in zip(self._out_bytes, self.outputs)]

    def _read(self, n: int) -> bytes:
        data = self._proc.stdout.read(n)
        if len(data) != n:
            raise self._died("the native .pte runner stopped mid-reply")
        return data

    def _died(self, what: str) -> RuntimeError:
        code = self._proc.wait(timeout=30)
        how = f"killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"exit status {code}"
        self._log.seek(0)
        # ExecuTorch's informational lines ("I 00:00:00.001 ...") say nothing about the failure.
        lines = [ln for ln in self._log.read().decode(errors="replace").splitlines() if ln.strip() and not ln.startswith("I ")]
        return RuntimeError(f"{what} ({how}){': ' + ' | '.join(lines[-3:]) if lines else ''}")

    def close(self) -> None:
        if self._proc.poll() is None:
            from edgecn.runner import sysinfo

            peak = sysinfo.process_peak_mb(self._proc.pid)
            if peak is not None:
                sysinfo.CHILD_PEAKS_MB.append(peak)
            try:
                self._proc.stdin.write(b"Q")
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._proc.stdout.close()
        self._log.close()


def _inspect(dump: Path, etrecord: Path | None, runs: int) -> dict:
    from executorch.devtools import Inspector

    from edgecn.runner.etdump import WRAPPERS, op_type

    inspector = Inspector(etdump_path=str(dump), etrecord=str(etrecord) if etrecord else None)
    per_op: dict[str, list[float]] = {}
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for ev in block.events:
            if ev.perf_data is None or ev.name in WRAPPERS:
                continue
            per_op.setdefault(op_type(ev.name), []).extend(float(t) for t in ev.perf_data.raw)
    from edgecn.runner.onnxrt import _summary

    result = _summary(per_op, runs, "ExecuTorch ETDump + Inspector")
    if etrecord is None:
        result["note"] = ("no ETRecord found beside the artifact: events are named by the runtime only "
                          "(delegate calls, kernels); lower with generate_etrecord=True and save it as NAME.etrecord "
                          "for operator names")
    return result
