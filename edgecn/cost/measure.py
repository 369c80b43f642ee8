"""Compile segment forms to int8 artifacts and time them with ``edgecn.runner``, here or on the device.

Timing goes through the same runner as ``edgecn profile`` (the runtime's own thread setting;
all forms of one run in one process, one after another: a process per form cost more than
timing it, 3 s each for ExecuTorch's Python runtime), so ``--remote`` measures on the device
that will run the model: the host compiles, the device times.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from edgecn.errors import EdgecnError

CALIBRATION_SAMPLES = 4


@dataclasses.dataclass(frozen=True)
class Timer:
    """How to time: the backend and its target options, threads, runs, and where (``remote``).

    ``rounds``: passes over all files, each in the reverse order of the one before, every file
    reloaded; a file's time is the median of its rounds. Machines drift (a neighbour's job, a
    clock or power state changing halfway): in one pass that makes whichever files ran late look
    slow, which a sum of segment times turns into a biased prediction. Rounds spread it over all.
    """

    backend: str
    options: object = None
    threads: int = 1
    runs: int = 100
    warmup: int = 10
    rounds: int = 1
    remote: str | None = None
    remote_python: str = "python3"
    ssh_key: str | None = None
    ssh_options: tuple[str, ...] = ()
    accept_new_host_key: bool = False


COMPILED_BY = ("backends", "quantize", "layers")
"""edgecn's packages whose code decides what a compiled segment is (and so how long it runs)."""


def source_digest(*packages: str) -> "hashlib._Hash":
    """A sha256 over the sources of edgecn's ``packages`` (e.g. ``"backends"``), file names included."""
    import hashlib

    import edgecn

    root = Path(edgecn.__file__).resolve().parent
    h = hashlib.sha256()
    for sub in packages:
        for path in sorted((root / sub).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h


def compile_revision(options=None) -> str:
    """Hash of what compiles a segment on this host: edgecn's version, the sources of
    ``COMPILED_BY`` and the target's backend options. A cost table keeps it with the machine's
    identity, so times of segments compiled another way (an edgecn that ran a gather in float,
    say) are not mixed with new ones."""
    import edgecn

    h = source_digest(*COMPILED_BY)
    h.update(f"{edgecn.__version__}|{options!r}".encode())
    return h.hexdigest()[:12]


def compile_all(items: dict[str, tuple[torch.nn.Module, tuple[int, ...]]], timer: Timer, folder: Path,
                say: Callable[[str], None]) -> tuple[dict[str, Path], dict[str, str], dict[str, list[str]]]:
    """Compile each ``name -> (model, input shape)`` to int8 in ``folder``; returns files, failures,
    and each artifact's ``[input dtype, output dtype]`` (int8 where the converter kept the ends int8)."""
    from edgecn.backends import BACKENDS, CompileContext

    from edgecn.logs import native_output_to

    backend = BACKENDS.get(timer.backend)
    files, failed, dtypes = {}, {}, {}
    start = time.monotonic()
    log = folder / "compile.log"
    for i, (name, (model, shape)) in enumerate(items.items()):
        gen = torch.Generator().manual_seed(i)
        calib = torch.randn((CALIBRATION_SAMPLES, *shape[1:]), generator=gen)
        options = timer.options if timer.options is not None else backend.options_type()
        if len(shape) != 4 and dataclasses.is_dataclass(options) and hasattr(options, "channel_last_io"):
            options = dataclasses.replace(options, channel_last_io=False)  # NHWC means nothing for a vector
        if dataclasses.is_dataclass(options) and hasattr(options, "quantized_io"):
            # int8 ends, as the segment's neighbours hand it over inside the model: float ends
            # would add a convert at each cut that the model does not run, and the cut prices
            # that take it off again are small differences of large times (on an AMD EPYC a
            # CondenseNet-74 .pte's float segments summed to twice the model's latency)
            options = dataclasses.replace(options, quantized_io=True)
        ctx = CompileContext(folder, name, options=options, calib=calib, method="minmax", use_cache=False)
        try:
            with native_output_to(log):  # the converters' progress and C++ logs stay out of the output
                art = backend.compile(model, calib[:1], "int8", ctx)
            files[name], dtypes[name] = art.path, [str(art.input.get("dtype")), str(art.output.get("dtype"))]
        except Exception as e:  # a converter refusing one form alone: that form is not a candidate
            failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
        if (i + 1) % 10 == 0 or i + 1 == len(items):
            say(f"[tune] compiled {i + 1}/{len(items)} ({time.monotonic() - start:.0f} s)")
    return files, failed, dtypes


def time_files(files: dict[str, Path], timer: Timer) -> tuple[dict[str, float], dict]:
    """Median ms of each file over ``timer.rounds``, and the environment (CPU, ISA) of the machine that ran them."""
    rounds, where = time_rounds(files, timer)
    return {name: statistics.median(ms) for name, ms in rounds.items()}, where


def time_rounds(files: dict[str, Path], timer: Timer) -> tuple[dict[str, list[float]], dict]:
    """Each file's median ms in each of ``timer.rounds`` passes (``{name: [round 0, round 1, ...]}``),
    the passes in alternating order, so that files compared with each other saw the same drift."""
    names = list(files)
    if len({Path(p).name for p in files.values()}) != len(files):
        raise EdgecnError("two files to time share a name, so their results cannot be told apart",
                          "give each file its own name")
    out: dict[str, list[float]] = {n: [] for n in names}
    where: dict = {}
    for r in range(max(1, timer.rounds)):
        order = names if r % 2 == 0 else names[::-1]
        times, where = _time_once({n: files[n] for n in order}, timer)
        for name, ms in times.items():
            out[name].append(ms)
    return out, where


def _time_once(files: dict[str, Path], timer: Timer) -> tuple[dict[str, float], dict]:
    from edgecn.runner.session import ProfileRequest, Remote, profile

    remote = (Remote(timer.remote, timer.remote_python, timer.ssh_key, tuple(timer.ssh_options),
                     timer.accept_new_host_key) if timer.remote else None)
    # one runtime: one process for all (else one process per file, as profile does)
    batch = len({Path(p).suffix.lower() for p in files.values()}) == 1
    doc = profile(ProfileRequest(tuple(str(p) for p in files.values()), threads=(timer.threads,), runs=timer.runs,
                                 warmup=timer.warmup, force=True, batch=batch, keep_samples=False, remote=remote))
    by_name = {Path(p).name: n for n, p in files.items()}
    out, versions = {}, {}
    for r in doc["results"]:
        name = by_name.get(r["name"]) or by_name.get(Path(r["artifact"]).name)
        if name is None:
            raise EdgecnError(f"the runner returned a result for {r['name']!r}, which was not sent",
                              "run edgecn tune again")
        if r.get("error"):
            raise EdgecnError(f"timing {r['name']!r} failed: {r['error']}", "profile that file alone with `edgecn profile FILE --force` to see why")
        out[name] = float(r["latency_ms"]["median"])
        versions.update(r.get("versions") or {})
    return out, {"environment": doc["environment"], "versions": versions}


def measure(items: dict[str, tuple[torch.nn.Module, tuple[int, ...]]], timer: Timer,
            say: Callable[[str], None], keep: Path | None = None) -> tuple[dict[str, float], dict[str, str], dict]:
    """Compile and time ``items``; returns ``(ms by name, failures by name, where measured)``.

    ``keep``: a folder the compiled files stay in (``kept_files`` finds them), so that they can
    be timed again later without compiling, e.g. on a quiet machine after a busy build."""
    if not items:
        return {}, {}, {}
    folder = Path(tempfile.mkdtemp(prefix="edgecn-tune-")) if keep is None else Path(keep)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        files, failed, dtypes = compile_all(items, timer, folder, say)
        if not files:
            return {}, failed, {}
        say(f"[tune] timing {len(files)} artifact(s) {'on ' + timer.remote if timer.remote else 'here'} "
            f"({timer.threads} thread(s), {timer.runs} runs each)")
        times, where = time_files(files, timer)
        return times, failed, {**where, "io": dtypes, "compiled_by": compile_revision(timer.options)}
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def kept_files(folder: Path, names) -> dict[str, Path]:
    """The compiled files ``measure(..., keep=folder)`` left for ``names`` (those it has)."""
    folder = Path(folder)
    found = {}
    for name in names:
        hits = sorted(folder.glob(f"{name}-int8.*")) if folder.is_dir() else []
        if hits:
            found[name] = hits[0]
    return found
