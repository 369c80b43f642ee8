"""TensorRT runner for serialized engines (.engine / .plan), where the tensorrt package is importable (Jetson).

Uses TensorRT 10's tensor API with host buffers through cuda-python or pycuda, whichever is
installed. Engines are not portable across TensorRT versions or devices: build them on the device.
"""

from __future__ import annotations

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.runner.base import Runner, TensorInfo, register


def _trt():
    try:
        import tensorrt
        return tensorrt
    except ImportError:
        raise EdgecnError("the tensorrt Python package is not installed",
                          "run on a Jetson with JetPack's TensorRT (python3-libnvinfer), or profile the .onnx instead") from None


@register(".engine", ".plan")
class TensorRTRunner(Runner):
    """A serialized TensorRT engine; buffers via pycuda (JetPack ships it)."""

    runtime = "tensorrt"

    def _load(self):
        trt = _trt()
        try:
            import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
            import pycuda.driver as cuda
        except ImportError:
            raise EdgecnError("pycuda is not installed", "pip install pycuda (needed to move data to the GPU)") from None
        self._cuda = cuda
        logger = trt.Logger(trt.Logger.WARNING)
        engine = trt.Runtime(logger).deserialize_cuda_engine(self.content if self.content is not None else self.path.read_bytes())
        if engine is None:
            raise EdgecnError(f"TensorRT could not deserialize {str(self.path)!r}",
                              "engines only load with the TensorRT version and GPU that built them: rebuild on this device")
        self._engine, self._ctx, self._stream = engine, engine.create_execution_context(), cuda.Stream()
        self._names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._bufs = {}
        for n in self._names:
            shape, dtype = tuple(engine.get_tensor_shape(n)), np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
            host = cuda.pagelocked_empty(shape, dtype)
            dev = cuda.mem_alloc(host.nbytes)
            self._bufs[n] = (host, dev)
            self._ctx.set_tensor_address(n, int(dev))

    def _is_input(self, name):
        return self._engine.get_tensor_mode(name) == _trt().TensorIOMode.INPUT

    def _details(self):
        infos = [TensorInfo(n, tuple(self._bufs[n][0].shape), self._bufs[n][0].dtype.name) for n in self._names]
        return ([i for i in infos if self._is_input(i.name)], [i for i in infos if not self._is_input(i.name)])

    def _run(self, arrays):
        cuda, s = self._cuda, self._stream
        for info, a in zip(self.inputs, arrays):
            host, dev = self._bufs[info.name]
            np.copyto(host, a)
            cuda.memcpy_htod_async(dev, host, s)
        self._ctx.execute_async_v3(s.handle)
        host, dev = self._bufs[self.outputs[0].name]
        cuda.memcpy_dtoh_async(host, dev, s)
        s.synchronize()
        return host.copy()

    def _unload(self):
        self._ctx = self._engine = None

    def versions(self):
        return {"tensorrt": _trt().__version__}
