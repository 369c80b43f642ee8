"""PT2E int8 (ExecuTorch's XNNPACKQuantizer, litert-torch's PT2EQuantizer) with guards.

The recipe: export -> prepare with per-channel symmetric weights and ``RangeObserver``
activations -> guard -> calibrate (or load cached ranges) -> convert.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from edgecn.errors import EdgecnError
from edgecn.quantize.calibration import RangeCache, cache_key
from edgecn.quantize.observer import RangeObserver
from edgecn.quantize import equalize
from edgecn.quantize.bias import correct_biases
from edgecn.quantize.prepare import explicit_batchnorms

GUARD_TOLERANCE = 1e-3
"""Largest relative output change allowed between the prepared graph and eager."""


def with_range_observer(config, method: str, percentile: float):
    """``config`` with both activation specs observed by ``RangeObserver(method)``."""
    spec = config.input_activation
    ctr = RangeObserver.with_args(method=method, percentile=percentile, eps=2 ** -12)
    spec = dataclasses.replace(spec, observer_or_fake_quant_ctr=ctr)
    return dataclasses.replace(config, input_activation=spec, output_activation=spec)


def quantize_pt2e(model: torch.nn.Module, example: torch.Tensor, quantizer, calib: torch.Tensor, *,
                  cache: RangeCache | None = None, fold_quantize: bool = True) -> torch.fx.GraphModule:
    """Export, prepare, guard, calibrate and convert ``model``.

    Args:
        model: float model in eval mode, BatchNorms already written as depthwise convs
            (``prepare.explicit_batchnorms``; the guard below fails loudly on any rewrite
            PT2E makes that changes the function).
        example: one input with the exported (batch-1) shape.
        quantizer: a configured PT2E quantizer.
        calib: calibration inputs, fed one at a time (the export has batch 1).
        cache: where ranges are loaded from (hit: no calibration run) or stored to.
        fold_quantize: fold weight quantization into int8 constants (litert-torch wants
            the quantize ops kept: its converter does the folding).

    Returns:
        The converted (quantized reference) graph module.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    exported = torch.export.export(model.eval(), (example,)).module()
    prepared = prepare_pt2e(exported, quantizer)
    guard_prepared(model, prepared, example)
    observers = {n: m for n, m in prepared.named_modules() if isinstance(m, RangeObserver)}
    cached = cache.load(observers) if cache is not None else None
    if cached is not None:
        for name, rng in cached.items():
            observers[name].fixed_range = rng
        calib = calib[:1]  # weight observers still need one pass
    with torch.no_grad():
        for x in calib:
            prepared(x.unsqueeze(0))
    if cache is not None and cached is None:
        cache.store({n: list(o.observed_range()) for n, o in observers.items()})
    return convert_pt2e(prepared, fold_quantize=fold_quantize)


class AnnotationPass:
    """A PT2E quantizer wrapping another one and editing its annotations after it annotated
    (``after_annotate``); everything else is the inner quantizer's."""

    def __init__(self, inner):
        self.inner = inner

    def transform_for_annotation(self, model):
        return self.inner.transform_for_annotation(model)

    def annotate(self, model):
        model = self.inner.annotate(model) or model
        self.after_annotate(model)
        return model

    def after_annotate(self, model) -> None:
        raise NotImplementedError

    def validate(self, model):
        return self.inner.validate(model)

    def prepare_obs_or_fq_callback(self, model, edge_or_node_to_obs_or_fq):
        return self.inner.prepare_obs_or_fq_callback(model, edge_or_node_to_obs_or_fq)

    def set_global(self, config):
        self.inner.set_global(config)
        return self

    def set_module_name(self, name, config):
        self.inner.set_module_name(name, config)
        return self


class FloatLayers(AnnotationPass):
    """A PT2E quantizer that leaves the named modules in float, for quantizers that cannot.

    litert-torch's quantizer asserts on ``set_module_name(name, None)``. Removing the
    annotations of the layer's nodes after it annotated means PT2E inserts no observers
    there, so the layer runs in float between a dequantize and a quantize. Only for
    quantizers without their own way: a neighbour's annotation may share a spec with a
    stripped node (XNNPACK's concat does), which PT2E then cannot resolve.
    """

    def __init__(self, inner, names):
        super().__init__(inner)
        self.names = tuple(names)

    def after_annotate(self, model) -> None:
        for node in model.graph.nodes:
            if _in_layers(node, self.names):
                node.meta.pop("quantization_annotation", None)


def keep_float(quantizer, names):
    """``quantizer`` leaving the modules ``names`` in float: its own way where it has one
    (``set_module_name(name, None)``, which also drops the layer from neighbours' shared
    specs), else by stripping their annotations (``FloatLayers``)."""
    try:
        for name in names:
            quantizer.set_module_name(name, None)
        return quantizer
    except (AssertionError, NotImplementedError, TypeError, AttributeError):
        # litert-torch's PT2EQuantizer asserts on a None config.
        return FloatLayers(quantizer, names)


def _in_layers(node, names) -> bool:
    """Whether ``node`` was traced inside one of the modules ``names`` (qualified paths)."""
    for path, _ in (node.meta.get("nn_module_stack") or {}).values():
        path = str(path).removeprefix("L['self'].")
        if any(path == n or path.startswith(n + ".") for n in names):
            return True
    return False


def guard_prepared(model: torch.nn.Module, prepared: torch.nn.Module, example: torch.Tensor,
                   trials: int = 3) -> None:
    """Fail loudly when preparation changed what the model computes.

    Observers pass values through, so prepared and eager must agree. torchao folds a
    BatchNorm into a conv whose output has other users (dense connectivity), which silently
    changes the function; ``explicit_batchnorms`` prevents that one, and this catches any
    other rewrite of the kind.
    """
    gen = torch.Generator().manual_seed(0)
    for _ in range(trials):
        x = torch.randn(example.shape, generator=gen)
        with torch.no_grad():
            ref, got = model(x), prepared(x)
        err = float((ref - got).abs().max() / ref.abs().max().clamp(min=1e-12))
        if err > GUARD_TOLERANCE:
            raise EdgecnError(
                f"int8 preparation changed the model's outputs (relative error {err:.2g} on random inputs); "
                "torchao's prepare_pt2e rewrote a layer it should only have observed",
                "build this model with --precision fp32, and report the model (edgecn models) and torchao version")


def _kind(quantizer) -> str:
    """The quantizer and the passes wrapping it, outermost first: what it observes depends on them."""
    names = []
    while quantizer is not None:
        names.append(type(quantizer).__name__)
        quantizer = getattr(quantizer, "inner", None)
    return "/".join(names)


def quantize_for_backend(backend: str, model: torch.nn.Module, example: torch.Tensor,
                         make_quantizer: Callable[[], object], config, ctx, *,
                         fold_quantize: bool = True,
                         edit: Callable[[torch.fx.GraphModule], None] | None = None) -> torch.fx.GraphModule:
    """The int8 graph for one PT2E backend, following ``ctx`` (calibration, method, float layers).

    Args:
        backend: backend name (part of the cache key: quantizers differ in what they observe).
        model: the float model.
        example: a batch-1 input.
        make_quantizer: the quantizer class.
        config: its per-channel symmetric QuantizationConfig; activation observers are
            replaced by ``RangeObserver(ctx.method)``.
        ctx: a ``edgecn.backends.CompileContext``.
        fold_quantize: see ``quantize_pt2e``.
        edit: the backend's own edit of the converted graph's ranges, made before the output
            biases are corrected (``edgecn.quantize.bias``), so the correction sees the final ranges.
    """
    if ctx.calib is None:
        raise EdgecnError("an int8 artifact needs a calibration set", "pass calibration data (training data or --calibration-images)")
    model = explicit_batchnorms(model)
    model, _ = equalize.equalize_concat_channels(model, ctx.calib)
    quantizer = make_quantizer()
    quantizer.set_global(with_range_observer(config, ctx.method, ctx.percentile))
    if ctx.float_layers:
        quantizer = keep_float(quantizer, ctx.float_layers)
    cache = None
    if ctx.use_cache:
        key = cache_key(model, ctx.calib, backend, _kind(quantizer), ctx.method, ctx.percentile,
                        sorted(ctx.float_layers), tuple(example.shape))
        cache = RangeCache(key)
    qm = quantize_pt2e(model, example, quantizer, ctx.calib, cache=cache, fold_quantize=fold_quantize)
    if edit is not None:
        edit(qm)
    if ctx.bias_correction:
        correct_biases(qm, model, ctx.calib)
    return qm
