"""Turning trained models into their deployable form.

``condense_checkpoint(path, out, config)`` (``checkpoint.py``) is the one entry point from a
trained checkpoint: it condenses learned group convs (``Condensing``) or deep-compresses a
model without them (``edgecn.compress.DeepCompressionConfig``).

One protocol underneath: every condensable layer has ``set_progress(progress)`` (training
schedule) and ``condense(strict)`` (returns the deployable module). The walkers in
``learned.py`` are the only code that knows about it, so a new condensable layer needs no
change here.
"""

from edgecn.condense.checkpoint import Condensing, condense_checkpoint
from edgecn.condense.learned import (
    condense_model,
    condensing_stage_of,
    deployable,
    group_lasso,
    is_condensable,
    set_progress,
)

__all__ = ["Condensing", "condense_checkpoint", "condense_model", "condensing_stage_of", "deployable", "group_lasso",
           "is_condensable", "set_progress"]
