"""int8: calibration sets and methods, PT2E recipes (ExecuTorch, TFLite) and Q/DQ ONNX (TensorRT).

Modules (imported on use; the PT2E ones need torchao):

* ``ranges``: min-max / percentile / entropy ranges from calibration samples (numpy).
* ``calibration``: class-stratified or folder calibration sets, recipes, the range cache.
* ``observer``: ``RangeObserver``, the PT2E activation observer using ``ranges``.
* ``prepare``: BatchNorms as depthwise convs before PT2E.
* ``pt2e``: export -> prepare -> guard -> calibrate -> convert.
* ``onnx_qdq``: onnxruntime ``quantize_static`` with TensorRT's rules.
* ``sensitivity``: which layers to keep in float when int8 loses too much.
"""

from edgecn.quantize.ranges import METHODS

__all__ = ["METHODS"]
