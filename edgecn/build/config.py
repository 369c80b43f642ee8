"""``BuildConfig`` (what to build) and ``BuildResult`` (what was built)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgecn.errors import EdgecnError

LOWERING_MODES = ("target", "auto", "none")


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """One ``edgecn build``.

    Attributes:
        target: target name, alias or path to a target .toml.
        checkpoint: a trained or condensed checkpoint; None trains a small CondenseNet first.
        data: data the model was trained on (held-out split validates, train split calibrates);
            ``None``: the data the checkpoint records (``digits`` when training the default model).
        out_dir: parent of the build folder ``<model>-<target>/``.
        model: model trained when no checkpoint is given.
        epochs: epochs of that training.
        input_size: input side; None takes the checkpoint's (or 32).
        calibration: calibration recipe name or .toml path; None takes the target's.
        calibration_images: a folder of images to calibrate on instead of training data.
        calibration_size: images drawn from the training data (overrides the recipe).
        method: calibration method (overrides the recipe).
        max_drop: most top-1 points an int8 artifact may lose against float.
        time_limit_s: seconds after which the build starts no more steps of an int8 artifact's
            fidelity search (other calibrations, layers kept in float): a step is priced at that
            artifact's first compile, and one that would end past the limit is skipped.
        lowering: ``target`` (the target's [lowering] table), ``auto`` (every choice timed
            on the backend's runtime) or ``none`` (no rewrites).
        precisions: only these precisions (default: the target's).
        backends: only these of the target's backends (default: all of them).
        use_cache: reuse cached calibration results.
        progress: print progress lines.
        tool_logs: leave the converters' and runtimes' own output on the terminal; by default
            it goes to ``build.log`` in the build folder.
    """

    target: str
    checkpoint: str | None = None
    data: str | None = None
    out_dir: str = "build"
    model: str = "condensenet-light"
    epochs: int = 12  # what `edgecn train` uses: >= 97% held-out on the default data
    input_size: int | None = None
    calibration: str | None = None
    calibration_images: str | None = None
    calibration_size: int | None = None
    method: str | None = None
    max_drop: float = 1.0
    time_limit_s: float = 600.0
    lowering: str = "target"
    precisions: tuple[str, ...] | None = None
    backends: tuple[str, ...] | None = None
    use_cache: bool = True
    progress: bool = True
    tool_logs: bool = False

    def __post_init__(self):
        if self.lowering not in LOWERING_MODES:
            raise EdgecnError(f"unknown lowering mode {self.lowering!r}", f"use one of {', '.join(LOWERING_MODES)}")
        if not 0 <= self.max_drop <= 100:
            raise EdgecnError(f"max drop {self.max_drop} is out of range", "pass --max-drop in top-1 points, e.g. 1.0")
        if not 0 <= self.time_limit_s <= 864_000:
            raise EdgecnError(f"time limit {self.time_limit_s} is out of range", "pass --time-limit in seconds, e.g. 600")
        if self.calibration_size is not None and self.calibration_size < 1:
            raise EdgecnError(f"calibration size {self.calibration_size} must be positive", "pass --calibration-size N with N >= 1")
        from edgecn.targets import PRECISIONS

        unknown = [p for p in self.precisions or () if p not in PRECISIONS]
        if unknown:
            raise EdgecnError(f"unknown precision {unknown[0]!r}", f"pass --precision as one of {', '.join(PRECISIONS)}")
        if self.method is not None:
            from edgecn.quantize.ranges import check_method

            check_method(self.method)


@dataclasses.dataclass
class BuildResult:
    """What ``build`` wrote.

    Attributes:
        folder: the build folder.
        manifest: path of manifest.json.
        report: the markdown report text.
        artifacts: the manifest's artifact entries.
        seconds: wall time.
        failed: artifacts the target wants that could not be built, each
            ``{"backend", "precision", "reason"}``; non-empty means the build is incomplete.
    """

    folder: Path
    manifest: Path
    report: str
    artifacts: list[dict]
    seconds: float
    failed: list[dict] = dataclasses.field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed
