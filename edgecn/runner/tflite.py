"""LiteRT / TFLite runner: ai_edge_litert's interpreter if installed, else tflite_runtime's."""

from __future__ import annotations

import numpy as np

from edgecn.errors import EdgecnError
from edgecn.runner.base import Runner, TensorInfo, register
from edgecn.runner.quiet import native_stderr_filtered


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite-runtime"
    except ImportError:
        raise EdgecnError("no TFLite interpreter is installed",
                          "pip install 'edgecn[runner]' (ai-edge-litert) or tflite-runtime") from None


def _info(d: dict) -> TensorInfo:
    scale, zero = d.get("quantization", (0.0, 0))
    quant = {"scale": float(scale), "zero_point": int(zero)} if scale else None
    return TensorInfo(d["name"], tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name, quant)


def inspect(path) -> dict:
    """What a .tflite holds, without running it: I/O tensors, op histogram (before delegation),
    XNNPACK partitions (DELEGATE nodes: 1 is one fused region) and float conv/FC ops.

    The interpreter keeps the nodes a delegate replaced in its node list, so which ops were
    taken is not visible from Python; the partition count is.
    """
    plain = _interpreter(path, delegates=False)
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in plain.get_tensor_details()}
    ops = plain._get_ops_details()
    histogram: dict[str, int] = {}
    for d in ops:
        histogram[d["op_name"]] = histogram.get(d["op_name"], 0) + 1
    float_compute = sum(1 for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                        and dtypes[op["inputs"][0]] == np.float32)
    partitions = sum(d["op_name"] == "DELEGATE" for d in _interpreter(path)._get_ops_details())
    return {"inputs": [_info(d) for d in plain.get_input_details()],
            "outputs": [_info(d) for d in plain.get_output_details()],
            "ops": dict(sorted(histogram.items())), "xnnpack_partitions": partitions,
            "float_compute_ops": float_compute}


def _interpreter(path, delegates: bool = True):
    cls, _ = _interpreter_class()
    from ai_edge_litert.interpreter import OpResolverType

    kind = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = cls(model_path=str(path), experimental_op_resolver_type=kind, num_threads=1)
    it.allocate_tensors()
    return it


@register(".tflite")
class TFLiteRunner(Runner):
    """A .tflite file in the LiteRT interpreter (XNNPACK delegate by default)."""

    runtime = "litert"

    def _import(self) -> None:
        self._cls, self._package = _interpreter_class()

    def _load(self) -> None:
        try:
            # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++ as it
            # applies the delegate (TF_CPP_MIN_LOG_LEVEL does not reach it); other lines pass.
            with native_stderr_filtered(keep=lambda line: not line.startswith("INFO: ")):
                source = ({"model_content": self.content} if self.content is not None
                          else {"model_path": str(self.path)})
                self._it = self._cls(**source, num_threads=self.threads)
                self._it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise EdgecnError(f"LiteRT could not load {str(self.path)!r}: {str(e).splitlines()[0]}",
                              "rebuild the artifact, or update ai-edge-litert if it uses newer ops") from e
        self._in = [d["index"] for d in self._it.get_input_details()]
        self._out = next((d["index"] for d in self._it.get_output_details()), None)  # none: activate() refuses it

    def _details(self):
        return ([_info(d) for d in self._it.get_input_details()], [_info(d) for d in self._it.get_output_details()])

    def _run(self, arrays):
        it = self._it
        if len(arrays) == 1:  # skip the zip on the common single-input case: this runs per inference
            it.set_tensor(self._in[0], arrays[0])
        else:
            for index, a in zip(self._in, arrays):
                it.set_tensor(index, a)
        it.invoke()
        return it.get_tensor(self._out)

    def _unload(self) -> None:
        self._it = None

    def versions(self):
        from importlib import metadata

        try:
            return {self._package: metadata.version(self._package)}
        except metadata.PackageNotFoundError:
            return {self._package: "unknown"}

    def op_profile(self, feed, runs):
        ops = {}
        try:
            for op in self._it._get_ops_details():
                ops[op["op_name"]] = ops.get(op["op_name"], 0) + 1
        except (AttributeError, KeyError):
            pass
        return {"available": False, "ops": ops,
                "reason": "LiteRT has no per-op timing from Python; run LiteRT's benchmark_model "
                          "--graph=FILE --enable_op_profiling=true for it (op counts are listed)"}
