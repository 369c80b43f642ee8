"""ExecuTorch runner for .pte files: edgecn's native C++ runner, no torch.

ExecuTorch's Python binding exchanges torch tensors and links libtorch (on aarch64 the package
index's torch is a 427 MB CUDA build), so .pte files run in ``edgecn-pte-runner``
(``edgecn.runner.native``), a small program built against the C++ libraries the executorch wheel
ships, driven over a pipe. It is the same code in a build's validation, in ``edgecn profile`` and
on a device, and it is compiled on first use (``python -m edgecn.runner.native`` does it ahead).
Its outputs equal the Python binding's bit for bit (tested). Per-op timings come from an ETDump
the program writes, read by ``edgecn.runner.etdump``.
"""

from __future__ import annotations

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
    """A .pte program's ``forward`` in ExecuTorch's C++ runtime (XNNPACK if the program was lowered to it)."""

    runtime = "executorch"

    def _import(self):
        self._binary = native_binary()

    def _load(self):
        self._process = NativeProcess(self._binary, self.model_file(), self.threads)

    def _details(self):
        return self._process.inputs, self._process.outputs

    def _run(self, arrays):
        return self._process.run(arrays)[0]

    def _runtime_seconds(self, wall: float) -> float:
        # The native runner times Method::execute itself; the pipe is not the runtime's cost.
        return self._process.seconds

    def _unload(self):
        if getattr(self, "_process", None) is not None:
            self._process.close()
        self._process = None

    def versions(self):
        return {"executorch": _installed_version(), "runner": self._binary.name}

    def op_profile(self, feed, runs):
        """Per-op timings from an ETDump of ``runs`` inferences in a second, tracing process."""
        from edgecn.runner.etdump import op_profile

        with tempfile.TemporaryDirectory(prefix="edgecn-etdump-") as tmp:
            dump = Path(tmp) / "run.etdp"
            process = NativeProcess(self._binary, self.model_file(), self.threads, etdump=dump)
            try:
                for _ in range(runs):
                    process.run(self._arrange(feed))
            finally:
                process.close()
            if not dump.exists():
                raise EdgecnError("the native .pte runner wrote no ETDump", f"rebuild it: `{native.BUILD} --force`")
            result = op_profile(dump, runs, "ExecuTorch ETDump")
        result["note"] = "events are named by the runtime (XNNPACK operators, kernels outside the delegate)"
        return result


def _installed_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        return "unknown"


def _dim_order(t: dict) -> tuple[int, ...] | None:
    """A tensor's memory order from the runner's start line; None for the usual one (outermost first)."""
    order = tuple(int(d) for d in t.get("dim_order") or ())
    return None if order == tuple(range(len(order))) else order


START_TIMEOUT_S = 300.0
"""How long the native runner may take to load a program and say what it loaded (a 100 MB
program loads in seconds; a runner that hangs is named after this)."""


class NativeProcess:
    """One ``edgecn-pte-runner`` process holding one loaded program; see pte_runner.cpp for the protocol."""

    def __init__(self, binary: Path, path: Path, threads: int | None, etdump: Path | None = None):
        argv = ([str(binary), str(path)] + (["--threads", str(threads)] if threads else [])
                + (["--etdump", str(etdump)] if etdump else []))
        # ExecuTorch's own log lines, shown only when something fails (all of them with EDGECN_RUNTIME_LOGS=1)
        self._log = tempfile.TemporaryFile()
        verbose = os.environ.get("EDGECN_RUNTIME_LOGS") == "1"
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=None if verbose else self._log)
        except OSError as e:  # not a program this machine runs (another architecture, a text file)
            raise EdgecnError(f"the native .pte runner {str(binary)!r} cannot be started: {e.strerror or e}",
                              f"check ${native.ENV_BINARY} (it must be an {native.BINARY_NAME} built here), or "
                              f"rebuild the runner: `{native.BUILD} --force`") from None
        self.seconds = 0.0
        line = self._start_line(binary, path)
        try:
            hello = json.loads(line)
        except ValueError:
            if line.strip():
                self._garbage(binary, path, line)
            died = self._died(f"the native .pte runner stopped while loading {str(path)!r}")
            self.close()
            raise EdgecnError(str(died), "re-copy or rebuild the artifact (it may be damaged); if it is sound, "
                                         f"rebuild the runner: `{native.BUILD} --force`") from None
        if isinstance(hello, dict) and hello.get("ok") is False:
            self.close()
            raise EdgecnError(f"ExecuTorch could not load {str(path)!r}: {hello.get('error')}",
                              "the file is damaged or was written by another executorch version: re-copy it, "
                              f"or rebuild it with executorch {_installed_version()}")
        try:
            self.inputs = [TensorInfo(f"input_{i}", tuple(int(d) for d in t["shape"]), str(t["dtype"]))
                           for i, t in enumerate(hello["inputs"])]
            self.outputs = [TensorInfo(f"output_{i}", tuple(int(d) for d in t["shape"]), str(t["dtype"]))
                            for i, t in enumerate(hello["outputs"])]
            self._out_bytes = [int(t["nbytes"]) for t in hello["outputs"]]
            # each tensor's memory order (a program exported channels-last takes NHWC bytes)
            self._in_order = [_dim_order(t) for t in hello["inputs"]]
            self._out_order = [_dim_order(t) for t in hello["outputs"]]
            self.threads = hello.get("threads")
        except (KeyError, TypeError, ValueError, AttributeError):
            self._garbage(binary, path, line)

    def _start_line(self, binary: Path, path: Path) -> bytes:
        """The runner's first line (what it loaded), waited for at most ``START_TIMEOUT_S``."""
        import select
        import time

        fd, line = self._proc.stdout.fileno(), bytearray()
        deadline = time.monotonic() + START_TIMEOUT_S
        # byte by byte: nothing follows the start line until a command is sent, so the buffered
        # reader used afterwards misses nothing
        while not line.endswith(b"\n") and len(line) < 1 << 20:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                raise EdgecnError(f"the native .pte runner {str(binary)!r} said nothing for {START_TIMEOUT_S:.0f} s "
                                  f"while loading {str(path)!r}",
                                  f"check ${native.ENV_BINARY} (it must be an {native.BINARY_NAME}), or rebuild the "
                                  f"runner: `{native.BUILD} --force`")
            chunk = os.read(fd, 1)
            if not chunk:
                break
            line += chunk
        return bytes(line)

    def _garbage(self, binary: Path, path: Path, line: bytes):
        from edgecn.terminal import visible

        self._proc.kill()
        self.close()
        shown = visible(line.decode("utf-8", "replace").strip())[:100]
        raise EdgecnError(f"the native .pte runner {str(binary)!r} answered {shown!r} instead of what it loaded "
                          f"from {str(path)!r}",
                          f"check ${native.ENV_BINARY} (it must be an {native.BINARY_NAME}), or rebuild the runner: "
                          f"`{native.BUILD} --force`") from None

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        try:
            self._proc.stdin.write(b"R" + b"".join((a if o is None else a.transpose(o)).tobytes()
                                                   for a, o in zip(arrays, self._in_order)))
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
        out = []
        for n, t, o in zip(self._out_bytes, self.outputs, self._out_order):
            y = np.frombuffer(self._read(n), dtype=t.dtype)
            out.append(y.reshape(t.shape) if o is None else y.reshape([t.shape[d] for d in o]).transpose(np.argsort(o)))
        return out

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
