"""Training: data sources and the training loop (single process or torchrun).

    from edgecn.train import TrainConfig, train, load_dataset

Names are imported on first use, so that ``edgecn.train.config`` (what the CLI needs to
build its parser) does not pull in torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "edgecn.train.config",
    "Dataset": "edgecn.train.data",
    "load_dataset": "edgecn.train.data",
    "TrainResult": "edgecn.train.loop",
    "evaluate": "edgecn.train.loop",
    "predict": "edgecn.train.loop",
    "train": "edgecn.train.loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edgecn.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
