"""Turning trained models into their deployable form.

One protocol: every condensable layer has ``set_progress(progress)`` (training schedule)
and ``condense(strict)`` (returns the deployable module). The walkers below are the only
code that knows about it, so a new condensable layer needs no change here.
"""

from edgecn.condense.learned import (
    condense_model,
    condensing_stage_of,
    deployable,
    group_lasso,
    is_condensable,
    set_progress,
)

__all__ = ["condense_model", "condensing_stage_of", "deployable", "group_lasso", "is_condensable", "set_progress"]
