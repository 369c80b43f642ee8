"""``rewrite``: run the passes in order on a traced copy and check the result is exact."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from edgecn.passes.base import PASSES, trace
from edgecn.lowering import LoweringConfig

# The order matters; each step says why it comes where it does.
ORDER = (
    "index",              # first: "dense" makes the 1x1 convs dense, so shuffles can fold into them
    "group_conv",         # before shuffles: a block-diagonal dense conv takes a shuffle for free
    "shuffle",            # after both: folds into a neighbouring dense conv, else splits the consumer
    "avg_pool",           # any time: touches only pools, which no other pass reads or makes
    "fold_bn",            # after shuffles: the BN behind a folded shuffle now follows its conv
    "multi_consumer_bn",  # last: only BNs that could not fold remain, some on shared conv outputs
)


class RewriteMismatch(RuntimeError):
    """A rewrite changed what the model computes: a bug in that pass, not a user error."""


class RewriteReport(list):
    """The rewritten sites (a list of entries) and, in ``kept``, the sites a pass left alone
    with the reason: every decision of a lowering is on record."""

    def __init__(self, *args):
        super().__init__(*args)
        self.kept: list[dict] = []

    def decisions(self) -> list[dict]:
        """Every site's entry, rewritten and kept, in the order the passes decided them."""
        return list(self) + list(self.kept)


def rewrite(model: nn.Module, cfg: LoweringConfig, example_input: torch.Tensor,
            measure: Callable[[nn.Module], float] | None = None,
            passes: Sequence[str] | None = None,
            choices: dict[str, str] | None = None) -> tuple[nn.Module, list[dict]]:
    """A lowered copy of ``model`` and one report entry per rewritten site.

    Args:
        model: an eval-mode model; it is not modified.
        cfg: which forms to lower to.
        example_input: an input the model accepts, used to trace shapes and to check
            that every pass is exact.
        measure: optional ``measure(model) -> seconds`` on the target's runtime; "auto"
            settings then time the candidate forms per site instead of following a rule.
        passes: run only these passes (in pipeline order); all by default.
        choices: ``{"pass:site": form}`` chosen per site from a cost table (``edgecn.cost``);
            named sites take that form where it is legal, the others follow ``cfg``.

    Returns:
        ``(model2, report)``: a ``RewriteReport``, one entry per rewritten site
        ``{"pass", "site", "choice", "reason", "macs_before", "macs_after"}``, and in
        ``report.kept`` one ``{"pass", "site", "choice", "reason"}`` per site left as it was.

    Raises:
        RewriteMismatch: a pass changed the outputs by more than ``cfg.tolerance``.
    """
    names = list(ORDER) if passes is None else [PASSES.canonical(p) for p in passes]
    gm = trace(model)
    with torch.no_grad():
        reference = model(example_input)
    report = RewriteReport()
    for name in sorted(names, key=ORDER.index):
        step = PASSES.get(name)()
        if not step.enabled(cfg):
            continue
        with torch.no_grad():
            rewritten, kept = step.run(gm, cfg, example_input, measure, choices)
            report += rewritten
            report.kept += kept
            check_exact(reference, gm(example_input), cfg.tolerance, name)
    if hasattr(model, "edgecn_config"):
        gm.edgecn_config = dict(model.edgecn_config)
    return gm.eval(), report


def check_exact(reference: torch.Tensor, output: torch.Tensor, tolerance: float, name: str) -> float:
    """Raise RewriteMismatch unless ``output`` is within ``tolerance`` (scaled by the output size)."""
    scale = max(1.0, float(reference.abs().max()))
    err = float((reference - output).abs().max())
    if not err <= tolerance * scale:
        raise RewriteMismatch(f"pass {name!r} changed the outputs by {err:.3g} (allowed {tolerance * scale:.3g})")
    return err
