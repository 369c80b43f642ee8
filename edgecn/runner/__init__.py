"""The torch-free on-device runner: load an artifact, time it, report.

``from edgecn.runner import open_runner; with open_runner(path, threads=1) as r: y = r.infer(x)``
works for .tflite (LiteRT), .onnx (onnxruntime), .pte (ExecuTorch) and TensorRT engines.
Nothing here imports torch, except the .pte runner's Python engine when a .pte is loaded
where torch is installed (ExecuTorch's Python binding exchanges torch tensors); elsewhere a
.pte runs in the native C++ runner (``python -m edgecn.runner.native`` builds it).

Run ``python -m edgecn.runner ARTIFACT`` (or ``edgecn profile``) for the profiler.
"""

from edgecn.runner.base import Runner, TensorInfo, open_runner, register, runner_class, runners

__all__ = ["Runner", "TensorInfo", "open_runner", "register", "runner_class", "runners"]
