"""Target-friendly graph rewrites: one exact rewrite per file, run in order by ``rewrite``.

>>> model2, report = rewrite(model, LoweringConfig(index="dense", shuffle="fold"), x)
"""

from edgecn.passes.base import PASSES, Pass, register_pass
from edgecn.lowering import LoweringConfig

# Importing the pass modules fills the registry.
from edgecn.passes import avg_pool, fold_bn, group_conv, index, multi_consumer_bn, shuffle  # noqa: E402,F401
from edgecn.passes.pipeline import ORDER, RewriteMismatch, check_exact, rewrite  # noqa: E402

__all__ = ["ORDER", "PASSES", "LoweringConfig", "Pass", "RewriteMismatch", "check_exact",
           "register_pass", "rewrite"]
