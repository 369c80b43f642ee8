"""edgecn: efficient CNNs from training to artifacts that run in real time on edge devices.

The package root stays light (no torch import) so that ``edgecn.runner`` works on a
device that has only numpy and a runtime. Heavy pieces live in their subpackages.
"""

__version__ = "0.1.0"

from edgecn.errors import EdgecnError  # noqa: E402

__all__ = ["EdgecnError", "__version__"]
