"""Profile one artifact in this process: check, load, warm up, time, sample sensors, report a dict.

Torch-free (except what the .pte runner imports when a .pte is profiled).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path

from edgecn.errors import EdgecnError
from edgecn.runner import inputs as inputs_mod
from edgecn.runner import measure, sysinfo
from edgecn.runner.base import open_runner
from edgecn.runner.manifest import ArtifactEntry, find_manifest_for


@dataclasses.dataclass(frozen=True)
class Options:
    """What to measure besides latency."""

    plan: measure.Plan = measure.Plan()
    threads: int | None = None
    accuracy: bool = False
    data: str | None = None
    op_profile: bool = False
    op_profile_runs: int = 20
    force: bool = False
    keep_samples: bool = True


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, force: bool) -> tuple[ArtifactEntry | None, dict]:
    """The manifest entry for ``path`` (if a manifest lists it) after checking its sha256."""
    if not path.is_file():
        raise EdgecnError(f"artifact {str(path)!r} does not exist", "pass the path of a built artifact")
    manifest = find_manifest_for(path)
    if manifest is None:
        return None, {"manifest": None, "sha256": sha256_of(path), "verified": False}
    entry = manifest.find(path)
    actual = sha256_of(path)
    ok = actual == entry.sha256
    if not ok and not force:
        raise EdgecnError(f"{str(path)!r} does not match its manifest (sha256 {actual[:12]}..., "
                          f"manifest says {entry.sha256[:12]}...)",
                          "rebuild or re-copy the artifact, or pass --force to profile it anyway")
    info = {"manifest": str(manifest.path), "sha256": actual, "verified": ok, "labels": manifest.labels}
    return entry, info


def profile_artifact(path: str | os.PathLike, opts: Options) -> dict:
    """Everything measured for one artifact, as a JSON-ready dict."""
    path = Path(path)
    entry, integrity = verify(path, opts.force)
    runner = open_runner(path, threads=opts.threads)
    with sysinfo.SensorSampler() as sensors:
        with runner:
            feed = _inputs(runner, entry, opts, integrity.get("labels") or [])
            first, warm = measure.first_and_warmup(runner, feed.timing, opts.plan.warmup)
            loop = measure.realtime if opts.plan.fps else measure.timed
            result = loop(runner, feed.timing, opts.plan)
            accuracy = measure.top1(runner, feed.labelled) if feed.labelled else None
            ops = runner.op_profile(feed.timing.arrays[0], opts.op_profile_runs) if opts.op_profile else None
            versions = runner.versions()
    if not opts.keep_samples:
        result["samples_ms"] = result["start_offsets_s"] = None
    return {"artifact": str(path), "name": path.name, "runtime": runner.runtime, "versions": versions,
            "threads": opts.threads, "size_bytes": path.stat().st_size, "integrity": _strip(integrity),
            "precision": entry.precision if entry else None,
            "input": {"source": feed.timing.source, "shape": list(runner.inputs[0].shape), "dtype": runner.inputs[0].dtype},
            "import_ms": runner.import_time * 1e3, "load_ms": runner.load_time * 1e3, "first_ms": first * 1e3,
            "warmup_ms": [t * 1e3 for t in warm], **result, "accuracy": accuracy, "op_profile": ops,
            "peak_rss_mb": sysinfo.peak_rss_mb(), "sensors": sensors.summary(), "finished": sysinfo.now()}


@dataclasses.dataclass
class _Feeds:
    timing: inputs_mod.Inputs
    labelled: inputs_mod.Inputs | None


def _inputs(runner, entry: ArtifactEntry | None, opts: Options, labels: list[str]) -> _Feeds:
    spec = inputs_mod.input_spec(runner.inputs[0], entry.input if entry else None)
    if opts.data or opts.accuracy:
        data = opts.data or "digits"
        feed = (inputs_mod.digits_inputs(spec) if data == "digits"
                else inputs_mod.folder_inputs(data, spec, labels))
        if opts.accuracy and not feed.labels:
            raise EdgecnError(f"--accuracy needs labelled data; {data!r} has none",
                              "use --data digits or a folder with one subfolder per class")
        return _Feeds(feed, feed if opts.accuracy else None)
    return _Feeds(inputs_mod.random_inputs(spec), None)


def _strip(integrity: dict) -> dict:
    return {k: v for k, v in integrity.items() if k != "labels"}


def wall_clock() -> float:
    return time.time()
