"""The runner interface (in the spirit of Polygraphy's) and the registry keyed by file suffix.

Torch-free. Each runtime lives in its own module and registers itself with
``@register(".suffix")`` (the package's modules are found, not listed); its heavy import
happens in ``activate()``, so importing this package costs nothing.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.registry import Registry

RUNNERS: Registry[type["Runner"]] = Registry("artifact suffix", package="edgecn.runner")


_FEEDABLE = ("float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32", "int64", "bool")
"""Tensor types a runner feeds and reads (numpy's names); others (strings, bfloat16) are refused at load."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """What a runtime says about one input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: dict | None = None


def register(*suffixes: str) -> Callable[[type["Runner"]], type["Runner"]]:
    """Class decorator: the runner for files ending in any of ``suffixes`` (".tflite")."""
    return RUNNERS.register(suffixes[0], aliases=tuple(suffixes[1:]))


def runners() -> dict[str, type["Runner"]]:
    """All registered runners by suffix."""
    return {s: RUNNERS.get(s) for s in RUNNERS.names(aliases=True)}


def runner_class(path: str | os.PathLike) -> type["Runner"]:
    """The runner class for ``path``, chosen from its suffix."""
    suffix = Path(path).suffix.lower()
    table = runners()
    if suffix not in table:
        raise EdgecnError(f"{str(path)!r} has no known artifact suffix ({suffix or 'none'})",
                          f"pass a file ending in one of: {', '.join(sorted(table))}")
    return table[suffix]


class Runner:
    """One loaded artifact in one runtime: ``activate()``, ``infer(feed)``, ``deactivate()``.

    Subclasses implement ``_load`` (returns nothing, keeps the session), ``_run`` (one
    inference on prepared arrays) and ``_details``; the base class times and validates.

    Args:
        path: the artifact.
        threads: intra-op threads for the runtime (None: the runtime's default).
    """

    runtime = ""
    """Name of the runtime, as reported."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, content: bytes | None = None):
        self.path = Path(path)
        self.threads = threads
        self.content = content
        self._copy: tempfile.TemporaryDirectory | None = None
        self.active = False
        self.load_time: float | None = None
        self.import_time: float | None = None
        self._last: float | None = None
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []

    # -- the interface ---------------------------------------------------------------
    def activate(self) -> "Runner":
        """Load the artifact into the runtime; records ``load_time`` in seconds."""
        if self.active:
            return self
        start = time.perf_counter()
        self._import()
        self.import_time = time.perf_counter() - start
        start = time.perf_counter()
        self._load()
        self.inputs, self.outputs = self._details()
        unknown = [f"{t.name!r} ({t.dtype})" for t in self.inputs + self.outputs if t.dtype not in _FEEDABLE]
        if unknown:
            self._unload()
            raise EdgecnError(f"{str(self.path)!r} has tensors of types edgecn cannot feed or read: {', '.join(unknown[:3])}",
                              f"use a model whose inputs and outputs are {', '.join(_FEEDABLE)}")
        if not self.outputs:
            self._unload()
            raise EdgecnError(f"{str(self.path)!r} has no outputs: running it would give nothing to read or time",
                              "pass an artifact whose model returns its result (a build's .tflite, .pte or .onnx)")
        # Cached so that checking a feed costs well under a microsecond per inference.
        self._expected = [(t.shape, np.dtype(t.dtype)) for t in self.inputs]
        self.load_time = time.perf_counter() - start
        self.active = True
        return self

    def infer(self, feed: dict[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """Run one inference; returns the first output. ``feed`` is one array or {input name: array}."""
        if not self.active:
            raise EdgecnError("runner used before activate()", "use `with open_runner(path) as r:` or call r.activate()")
        arrays = self._arrange(feed)
        start = time.perf_counter()
        try:
            out = self._run(arrays)
        except (RuntimeError, ValueError, SystemError) as e:  # a file that loads but cannot run
            raise EdgecnError(f"{self.runtime} failed to run {str(self.path)!r}: {(str(e).splitlines() or [''])[0][:200]}",
                              "rebuild or re-copy the artifact (it is damaged), or update the runtime") from e
        self._last = self._runtime_seconds(time.perf_counter() - start)
        return out

    def last_inference_time(self) -> float | None:
        """Seconds the runtime spent in the last ``infer`` (the runtime call only)."""
        return self._last

    def deactivate(self) -> None:
        """Release the runtime's session (and the private copy of the bytes, if one was made)."""
        self._unload()
        self.active = False
        if self._copy is not None:
            self._copy.cleanup()
            self._copy = None

    def model_file(self) -> Path:
        """A file holding exactly the bytes to run, for runtimes that load by name.

        Without ``content`` that is the artifact itself. With it (the bytes whose sha256 was
        checked), a private copy: a new folder only this user can enter, the file created
        there, removed on ``deactivate``. So a file replaced after it was verified is never
        what runs.
        """
        if self.content is None:
            return self.path
        if self._copy is None:
            self._copy = tempfile.TemporaryDirectory(prefix="edgecn-verified-")  # mode 0700
            target = Path(self._copy.name) / f"model{self.path.suffix.lower()}"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.content)
        return Path(self._copy.name) / f"model{self.path.suffix.lower()}"

    def versions(self) -> dict[str, str]:
        """Versions of the runtime libraries in use."""
        return {}

    def op_profile(self, feed: np.ndarray, runs: int) -> dict[str, Any]:
        """Per-op timings if the runtime offers them; else {"available": False, "reason": ...}."""
        return {"available": False, "reason": f"{self.runtime} offers no per-op profile from Python"}

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # -- for subclasses ------------------------------------------------------------------
    def _import(self) -> None:
        """Import the runtime (timed apart from loading: it is a one-off cost per process)."""

    def _load(self) -> None:
        raise NotImplementedError

    def _details(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        raise NotImplementedError

    def _run(self, arrays: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _unload(self) -> None:
        pass

    def _runtime_seconds(self, wall: float) -> float:
        """Seconds to report for the inference just run (a runner that times inside its runtime overrides this)."""
        return wall

    def _arrange(self, feed: dict[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
        """Order the feed like the model's inputs and check shapes/dtypes (a wrong feed can crash a runtime)."""
        if type(feed) is np.ndarray and len(self._expected) == 1:  # the hot path of every timing loop
            shape, dtype = self._expected[0]
            if feed.shape == shape and feed.dtype == dtype and feed.flags.c_contiguous:
                return [feed]
        if isinstance(feed, dict):
            missing = [t.name for t in self.inputs if t.name not in feed]
            if missing and len(feed) == len(self.inputs) == 1:
                arrays = list(feed.values())
            elif missing:
                raise EdgecnError(f"feed lacks input(s) {missing}", f"pass {{name: array}} for {[t.name for t in self.inputs]}")
            else:
                arrays = [feed[t.name] for t in self.inputs]
        else:
            arrays = [feed]
        if len(arrays) != len(self.inputs):
            raise EdgecnError(f"model has {len(self.inputs)} inputs, feed has {len(arrays)}", "pass a dict with one array per input")
        for a, t in zip(arrays, self.inputs):
            if tuple(a.shape) != t.shape or str(a.dtype) != t.dtype:
                raise EdgecnError(f"input {t.name!r} wants {t.dtype}{list(t.shape)}, got {a.dtype}{list(a.shape)}",
                                  "match the artifact's input shape and dtype (see its manifest)")
        return [np.ascontiguousarray(a) for a in arrays]


def open_runner(path: str | os.PathLike, threads: int | None = None, check: bool = True,
                content: bytes | None = None, **options) -> Runner:
    """A runner for ``path`` (not yet active; use it as a context manager).

    Args:
        path: a .tflite, .pte, .onnx, .engine or .plan file.
        threads: intra-op threads (None: the runtime's default).
        check: validate the file's structure first, so a damaged file gives an error, not a crash.
        content: the artifact's bytes, already read (and verified): these run, not what the file
            holds by the time the runtime would open it.
        **options: runner-specific options.
    """
    from edgecn.runner.check import check_artifact

    path = Path(path)
    cls = runner_class(path)
    if check:
        check_artifact(path, content)
    return cls(path, threads=threads, content=content, **options)
