"""The torch-free on-device runner: load an artifact, classify images with it, time it, report.

``from edgecn.runner import Classifier; with Classifier(path) as m: m.predict("img.png").top(5)``
answers images through any artifact of a build, the same way for every format (see ``classify``).
``from edgecn.runner import open_runner; with open_runner(path, threads=1) as r: y = r.infer(x)``
works for .tflite (LiteRT), .onnx (onnxruntime), .pte (ExecuTorch) and TensorRT engines.
Nothing here imports torch: a .pte runs in edgecn's native C++ runner (``python -m
edgecn.runner.native`` builds it), not in ExecuTorch's Python binding, which needs torch.

Run ``python -m edgecn.runner ARTIFACT`` (or ``edgecn profile``) for the profiler.
"""

from edgecn.runner.base import Runner, TensorInfo, open_runner, register, runner_class, runners
from edgecn.runner.classify import Classifier, Prediction, classify

__all__ = ["Classifier", "Prediction", "Runner", "TensorInfo", "classify", "open_runner", "register", "runner_class",
           "runners"]
