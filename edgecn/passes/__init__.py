"""Target-friendly graph rewrites: one exact rewrite per file, run in order by ``rewrite``.

>>> model2, report = rewrite(model, LoweringConfig(index="dense", shuffle="fold"), x)
"""

from edgecn.passes.base import PASSES, Pass, register_pass
from edgecn.lowering import LoweringConfig
from edgecn.passes.pipeline import ORDER, RewriteMismatch, RewriteReport, check_exact, rewrite  # noqa: E402

__all__ = ["ORDER", "PASSES", "LoweringConfig", "Pass", "RewriteMismatch", "RewriteReport", "check_exact",
           "register_pass", "rewrite"]
