"""Profile one artifact in this process: check, load, warm up, time, sample sensors, report a dict.

Torch-free (except what the .pte runner imports when a .pte is profiled).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time
from pathlib import Path

from edgecn.errors import EdgecnError
from edgecn.runner import inputs as inputs_mod
from edgecn.runner import measure, signature, sysinfo
from edgecn.runner.base import open_runner
from edgecn.runner.evaluate import output_quant
from edgecn.runner.manifest import ArtifactEntry, entry_from_spec, find_manifest_for
from edgecn.runner.spec import EMBEDDED, read_spec, sidecar


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


MAX_ARTIFACT_BYTES = 2 << 30
"""Largest artifact read (a .tflite flatbuffer cannot exceed 2 GiB; engines and programs here are far smaller)."""


def verify(path: Path, force: bool) -> tuple[ArtifactEntry | None, dict]:
    """``read_verified`` without the bytes (for a check before anything runs)."""
    entry, info, _ = read_verified(path, force)
    return entry, info


def read_verified(path: Path, force: bool) -> tuple[ArtifactEntry | None, dict, bytes]:
    """The manifest entry for ``path`` after checking its sha256 against the manifest of its folder,
    and the bytes that were hashed: hand those to the runtime (``open_runner(content=...)``), so
    what runs is what was verified, even if the file is replaced in between.

    One rule: an artifact is verified against ``manifest.json`` in the folder it is named in.
    A symlink is followed only within that folder; a name the manifest does not list, a link
    out of the folder or a wrong sha256 is refused unless ``force`` (then reported as
    unverified). A folder without a manifest holds an unverified artifact (one copied alone).
    """
    if not path.exists():
        raise EdgecnError(f"artifact {str(path)!r} does not exist", "pass the path of a built artifact")
    if not path.is_file():
        raise EdgecnError(f"artifact {str(path)!r} is not a regular file", "pass the path of a built artifact file")
    from edgecn.limits import read_file

    content = read_file(path, "artifact", MAX_ARTIFACT_BYTES)
    manifest = find_manifest_for(path)
    actual = hashlib.sha256(content).hexdigest()
    if manifest is None:
        spec = read_spec(path)
        info = {"manifest": None, "sha256": actual, "verified": False, "reason": "no manifest in its folder",
                "spec": "carried by the artifact" if spec else None}
        if spec is None:
            return None, info, content
        return (entry_from_spec(path, spec), {**info, "labels": spec.get("labels") or [], "data": spec.get("data")},
                content)
    problem = _location_problem(path, manifest)
    entry = manifest.find(path) or (manifest.find(path.resolve()) if problem is None else None)
    if problem is None and entry is None:
        problem = f"its folder's manifest {str(manifest.path)!r} does not list it"
    if problem is None and actual != entry.sha256:
        problem = f"sha256 {actual[:12]}... differs from the manifest's {entry.sha256[:12]}..."
    if problem is not None and not force:
        raise EdgecnError(f"{str(path)!r} cannot be verified: {problem}",
                          "profile the artifact the build wrote (rebuild or re-copy it), or pass --force "
                          "to run it unverified")
    info = {"manifest": str(manifest.path), "sha256": actual, "verified": problem is None,
            "labels": manifest.labels, "data": manifest.raw.get("data")}
    if problem is not None:
        info["reason"] = problem
    return entry, info, content


def _location_problem(path: Path, manifest) -> str | None:
    """Why ``path`` may not be verified by its folder's manifest: a link whose file lies elsewhere."""
    target = path.resolve()
    if target.parent != Path(os.path.abspath(path)).parent.resolve():
        return f"it is a link to {str(target)!r}, outside its build folder"
    return None


def profile_artifact(path: str | os.PathLike, opts: Options) -> dict:
    """Everything measured for one artifact, as a JSON-ready dict."""
    path = Path(path)
    entry, integrity, content = read_verified(path, opts.force)
    runner = open_runner(path, threads=opts.threads, content=content)
    with sysinfo.SensorSampler() as sensors:
        with runner:
            feed = _inputs(runner, entry, opts, integrity.get("labels") or [], integrity.get("data"))
            first, warm = measure.first_and_warmup(runner, feed.timing, opts.plan)
            measure.check_estimate(opts.plan, first, warm, path.name, _say)
            loop = measure.realtime if opts.plan.fps else measure.timed
            result = loop(runner, feed.timing, opts.plan)
            accuracy = (measure.top1(runner, feed.labelled, output_quant(runner, entry.output if entry else None))
                        if feed.labelled else None)
            ops = runner.op_profile(feed.timing.arrays[0], opts.op_profile_runs) if opts.op_profile else None
            versions = runner.versions()
    if not opts.keep_samples:
        result["samples_ms"] = result["start_offsets_s"] = None
    return {"artifact": str(path), "name": path.name, "runtime": runner.runtime, "versions": versions,
            "threads": opts.threads, "size_bytes": len(content), "integrity": _strip(integrity),
            "precision": entry.precision if entry else None,
            "input": {"source": feed.timing.source, "shape": list(runner.inputs[0].shape) if runner.inputs else [],
                      "dtype": runner.inputs[0].dtype if runner.inputs else None,
                      "tensors": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in runner.inputs]},
            "import_ms": runner.import_time * 1e3, "load_ms": runner.load_time * 1e3, "first_ms": first * 1e3,
            "warmup_ms": [t * 1e3 for t in warm], **result, "accuracy": accuracy, "op_profile": ops,
            "peak_rss_mb": sysinfo.peak_rss_mb(), "sensors": sensors.summary(), "finished": sysinfo.now()}


@dataclasses.dataclass
class _Feeds:
    timing: inputs_mod.Inputs
    labelled: inputs_mod.Inputs | None


def _inputs(runner, entry: ArtifactEntry | None, opts: Options, labels: list[str], trained_on: str | None) -> _Feeds:
    if opts.accuracy and entry is None:
        raise EdgecnError(f"cannot score {str(runner.path)!r}: it carries no input spec (normalisation, layout, "
                          "quantization), and guessing would give a wrong top-1",
                          "profile it in its build folder (beside manifest.json)"
                          + ("" if runner.path.suffix.lower() in EMBEDDED else f", copy {sidecar(runner.path).name} with it")
                          + ", or rebuild it with this edgecn (which writes the spec)")
    where = f"artifact {str(runner.path)!r}"
    if entry is not None:
        signature.agree(runner, entry.input, entry.output, labels, where, images=bool(opts.data or opts.accuracy))
    elif not (opts.data or opts.accuracy) and not signature.takes_one_image(runner):
        return _Feeds(inputs_mod.Inputs("random", signature.random_feeds(runner)), None)
    spec = inputs_mod.input_spec(signature.image_input(runner, where) if entry is None else runner.inputs[0],
                                 entry.input if entry else None)
    if opts.data or opts.accuracy:
        data = opts.data or _data_for_accuracy(runner.path, trained_on)
        feed = (inputs_mod.digits_inputs(spec) if data == "digits"
                else inputs_mod.folder_inputs(data, spec, labels))
        if opts.accuracy and not feed.labels:
            raise EdgecnError(f"--accuracy needs labelled data; {data!r} has none",
                              "use --data digits or a folder with one subfolder per class")
        return _Feeds(feed, feed if opts.accuracy else None)
    return _Feeds(inputs_mod.random_inputs(spec), None)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _data_for_accuracy(path: Path, trained_on: str | None) -> str:
    """``--accuracy`` without ``--data``: the data the artifact says it was trained on, if it ships with edgecn."""
    if trained_on == "digits":
        return "digits"
    if trained_on is None:
        raise EdgecnError(f"{str(path)!r} does not say what data it was trained on",
                          "pass --data digits or --data FOLDER (one subfolder per class)")
    raise EdgecnError(f"{str(path)!r} was trained on {trained_on!r}, which is not on this machine",
                      f"pass --data FOLDER with {trained_on!r}'s held-out images (one subfolder per class)")


def _strip(integrity: dict) -> dict:
    return {k: v for k, v in integrity.items() if k not in ("labels", "data")}


def wall_clock() -> float:
    return time.time()
