"""The torch-free on-device runner: load an artifact, time it, report.

``from edgecn.runner import open_runner; with open_runner(path, threads=1) as r: y = r.infer(x)``
works for .tflite (LiteRT), .onnx (onnxruntime), .pte (ExecuTorch) and TensorRT engines.
Nothing here imports torch: a .pte runs in edgecn's native C++ runner (``python -m
edgecn.runner.native`` builds it), not in ExecuTorch's Python binding, which needs torch.

Run ``python -m edgecn.runner ARTIFACT`` (or ``edgecn profile``) for the profiler.
"""

from edgecn.runner.base import Runner, TensorInfo, open_runner, register, runner_class, runners

__all__ = ["Runner", "TensorInfo", "open_runner", "register", "runner_class", "runners"]
