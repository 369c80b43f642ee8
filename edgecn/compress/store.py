"""Saving and loading deep-compressed models, and the sizes they travel at."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecn.compress import format as fmt
from edgecn.compress.pruning import compressible_layers
from edgecn.errors import EdgecnError


def state_arrays(model: nn.Module) -> tuple[dict[str, np.ndarray], set[str]]:
    """The state dict as numpy arrays, and the names of the conv/linear weights to code."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    coded = {f"{name}.weight" for name in compressible_layers(model)}
    return arrays, coded & set(arrays)


def save_compressed(path: str | os.PathLike, model: nn.Module, extra: dict | None = None) -> Path:
    """Write ``model`` as one compressed weight file (atomically; see ``edgecn.compress.format``).

    Lossless for any model: conv/linear weights with at most 256 distinct non-zero values
    (what weight sharing leaves) are sparse- and Huffman-coded, everything else is raw.

    Args:
        path: the output file (conventionally ``.edc``).
        model: a model built by ``edgecn.models.create_model`` (it needs ``edgecn_config``).
        extra: JSON-serialisable notes stored in the header (e.g. the compression report).
    """
    config = getattr(model, "edgecn_config", None)
    if config is None:
        raise EdgecnError("the model has no edgecn_config, so it could not be rebuilt from the file",
                          "build it with edgecn.models.create_model or load it with load_checkpoint")
    arrays, coded = state_arrays(model)
    header_config = {**config, "compression": extra} if extra else config
    return fmt.write(path, header_config, arrays, coded)


def load_compressed(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model stored in ``path`` with bit-exactly the weights that were saved (eval mode)."""
    from edgecn.models import rebuild_model

    config, arrays = fmt.read(path)
    config = {k: v for k, v in config.items() if k != "compression"}
    try:
        model = rebuild_model(config)
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
    except (KeyError, TypeError, RuntimeError) as e:
        raise EdgecnError(f"compressed weight file {str(path)!r} does not describe a model this edgecn can build "
                          f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})",
                          "re-create it with `edgecn condense` from the matching checkpoint") from e
    model.edgecn_config = config
    return model.eval()


def compressed_to_checkpoint(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Turn a compressed weight file into a normal edgecn checkpoint (for `edgecn build`)."""
    from edgecn.checkpoint import save_checkpoint
    from edgecn.fileio import sha256_file

    model = load_compressed(path)
    return save_checkpoint(out, model, extra={"compressed_from": {"path": str(path), "sha256": sha256_file(path)}})


def bundle_size(path: str | os.PathLike) -> dict[str, int]:
    """Bytes of ``path`` as stored, and deflated as in a zip/APK/IPA app bundle (level 9)."""
    data = Path(path).read_bytes()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: what a zip entry holds
    return {"raw": len(data), "zip": len(deflate.compress(data) + deflate.flush())}
