"""Reading the CIFAR python files without trusting them.

The CIFAR archives are pickles, and a pickle can name any importable callable (``os.system``,
``builtins.open``...) and run it while loading. This unpickler resolves only the handful of
names that numpy arrays and scalars need, so a file that asks for anything else is refused
before any of its code runs.
"""

from __future__ import annotations

import codecs
import io
import pickle

import numpy as np


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Python 3 pickles of numpy arrays (protocol 2) store raw bytes as latin-1 text that
    # `_codecs.encode` turns back into bytes; any other codec is not something numpy needs.
    if codecs.lookup(encoding).name not in ("latin-1", "iso8859-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, encoding, errors)


def _numpy_core():
    return getattr(np, "_core", None) or np.core


def _allowed() -> dict[tuple[str, str], object]:
    core = _numpy_core()
    names = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    # Files written with numpy 1.x name numpy.core, with numpy 2.x numpy._core.
    for pkg in ("numpy.core", "numpy._core"):
        names[(f"{pkg}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        names[(f"{pkg}.multiarray", "scalar")] = core.multiarray.scalar
        names[(f"{pkg}.numeric", "_frombuffer")] = core.numeric._frombuffer
    return names


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy array/scalar constructors."""

    _ALLOWED = _allowed()

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"the file asks to run {module}.{name}, which a data file never needs") from None


def safe_load(data: bytes):
    """Unpickle ``data`` allowing only plain containers, str/bytes and numpy arrays.

    Keys and strings written by Python 2 (the original CIFAR files) come back as bytes.

    Raises:
        pickle.UnpicklingError: the data names anything outside that set, or is not a pickle.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError:
        raise
    except Exception as e:  # truncated or garbage input surfaces as many exception types
        raise pickle.UnpicklingError(f"not a readable pickle ({type(e).__name__}: {e})") from e
