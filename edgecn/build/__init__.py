"""``edgecn build``: condense -> rewrite -> quantize -> compile -> validate -> report, per target."""

from edgecn.build.config import BuildConfig, BuildResult
from edgecn.build.pipeline import build

__all__ = ["BuildConfig", "BuildResult", "build"]
