"""ExecuTorch ``.pte`` with the XNNPACK delegate, fp32 and int8 (PT2E, XNNPACKQuantizer)."""

from __future__ import annotations

import collections
import dataclasses


from edgecn.backends import (Artifact, CompileContext, artifact_path, package_versions, register_backend,
                             time_fp32)
from edgecn.errors import EdgecnError

_IGNORED = {"getitem", "output", "placeholder"}


@dataclasses.dataclass(frozen=True)
class Options:
    """``[executorch]`` of a target file.

    Attributes:
        require_full_delegation: fail the build unless every op runs in XNNPACK, apart
            from ``allowed_outside``.
        allowed_outside: ops the lowering keeps outside XNNPACK on purpose (e.g.
            ``aten.index_select`` where ``gather_cost`` found the gather cheaper than any
            delegated form); they split the program into several partitions.
        quantized_io: an int8 program takes and returns int8 tensors (their scale and zero
            point in the manifest), as an int8 ``.tflite`` does: the app quantizes its input
            and the program skips the float<->int8 converts at its ends. An end that is not
            quantized right at the input (a layer kept in float) or dequantized right at the
            output stays float; the artifact's spec says which.
    """

    require_full_delegation: bool = True
    allowed_outside: tuple[str, ...] = ()
    quantized_io: bool = False

    def lowering_conflict(self, cfg) -> tuple[str, str] | None:
        """``(what, fix)`` when a target's lowering ``cfg`` can keep gathers that these options refuse."""
        keeps = cfg.index in ("gather", "late_gather") or cfg.cost_table is not None \
            or (cfg.index == "auto" and cfg.gather_cost is not None)
        if keeps and self.require_full_delegation and "aten.index_select" not in self.allowed_outside:
            return ("[lowering] can keep channel gathers in the .pte (index, gather_cost or cost_table), which "
                    "XNNPACK does not run, but [executorch] requires every op in XNNPACK",
                    'add allowed_outside = ["aten.index_select"] under [executorch], or leave gather_cost out '
                    "for executorch so that every gather is folded")
        return None


def compile(model, example, precision: str, ctx: CompileContext) -> Artifact:
    """Export ``model`` to ``<stem>-<precision>.pte`` in ``ctx.out_dir``."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    opts = ctx.options or Options()
    graph, int8_concats = _int8_graph(model, example, ctx) if precision == "int8" else (model.eval(), 0)
    ep = torch.export.export(graph, (example,))
    q_in, q_out = quantized_ends(ep) if precision == "int8" and opts.quantized_io else (None, None)
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    ops, partitions, portable = delegation(edge.exported_program().graph_module)
    path = artifact_path(ctx, precision, ".pte")
    path.write_bytes(edge.to_executorch().buffer)
    total = sum(ops.values())
    out_shape = list(ep.graph_module.graph.output_node().args[0][0].meta["val"].shape)
    return Artifact(path, "executorch", precision,
                    input={"name": "x", "shape": list(example.shape), "layout": "NCHW", **_end_spec(q_in)},
                    output={"name": "logits", "shape": out_shape, **_end_spec(q_out)},
                    ops=ops, delegated_share=(total - sum(portable.values())) / total if total else None,
                    extra={"partitions": partitions, "non_delegated": portable, "gather_concats": int8_concats})


def _int8_graph(model, example, ctx: CompileContext):
    from edgecn.quantize.gather import fold_concat_qdq, fold_gather_qdq

    # A kept gather (XNNPACK has none) runs on int8 between partitions instead of in float,
    # and so does the concat it reads, so that the concat does not cross a partition boundary.
    gm = int8_graph(model, example, ctx)
    fold_gather_qdq(gm)
    return gm, fold_concat_qdq(gm)


def int8_graph(model, example, ctx: CompileContext):
    """The quantized PT2E graph an int8 ``.pte`` is lowered from, before its kept gathers and their
    concats move onto int8 (an exact rearrangement: they share their input's parameters), so that
    each of their quantize/dequantize pairs still stands alone."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)

    from edgecn.quantize.gather import SharedGathers
    from edgecn.quantize.pt2e import quantize_for_backend

    config = get_symmetric_quantization_config(is_per_channel=True)
    return quantize_for_backend("executorch", model, example, lambda: SharedGathers(XNNPACKQuantizer()), config, ctx)


def quantized_ends(ep) -> tuple[tuple | None, tuple | None]:
    """Make the program's input and output int8 where it quantizes right at the input and
    dequantizes right at the output; returns each end's ``(scale, zero_point, qmin, qmax, dtype)``
    (None for an end left float)."""
    import torch
    from executorch.exir.passes.quantize_io_pass import quantize_input, quantize_output

    q_in = quantize_input(ep, 0) if _share_input_quantize(ep) else None
    out = ep.graph_module.graph.output_node().args[0][0]
    q_out = quantize_output(ep, 0) if out.target == torch.ops.quantized_decomposed.dequantize_per_tensor.default else None
    return q_in, q_out


def _share_input_quantize(ep) -> bool:
    """Whether the input now has one user, its quantize; a kept gather reading the float input
    (SharedGathers leaves one at the start of a segment) is moved behind that quantize, with a
    requantize after it where its own parameters differ."""
    import torch

    graph = ep.graph_module.graph
    name = ep.graph_signature.user_inputs[0]
    ph = next(n for n in graph.nodes if n.op == "placeholder" and n.name == name)
    quant, dequant = (torch.ops.quantized_decomposed.quantize_per_tensor.default,
                      torch.ops.quantized_decomposed.dequantize_per_tensor.default)
    qs = [u for u in ph.users if u.target == quant]
    if len(qs) != 1:
        return False
    q = qs[0]
    others = [u for u in ph.users if u is not q]
    moves = []
    for u in others:
        after = list(u.users)
        if u.target != torch.ops.aten.index_select.default or len(after) != 1 or after[0].target != quant:
            return False  # something reads the input in float: that end stays float
        moves.append((u, after[0]))
    for gather, requant in moves:
        gather.replace_input_with(ph, q)
        gather.meta["val"] = gather.meta["val"].to(q.args[5])
        if tuple(requant.args[1:]) == tuple(q.args[1:]):
            requant.replace_all_uses_with(gather)
            graph.erase_node(requant)
        else:
            with graph.inserting_after(gather):
                dq = graph.call_function(dequant, (gather, *q.args[1:]))
            dq.meta["val"] = gather.meta["val"].to(torch.float32)
            requant.replace_input_with(gather, dq)
    ep.graph_module.recompile()
    return True


def _end_spec(q) -> dict:
    """An artifact's input/output ``dtype`` and ``quant`` from ``quantized_ends``."""
    if q is None:
        return {"dtype": "float32", "quant": None}
    scale, zero_point, _, _, dtype = q
    return {"dtype": str(dtype).removeprefix("torch."), "quant": {"scale": float(scale), "zero_point": int(zero_point)}}


def delegation(graph_module) -> tuple[dict[str, int], int, dict[str, int]]:
    """Op histogram of a lowered edge program, its XNNPACK partition count and the ops left out.

    Returns:
        ``(ops, partitions, portable)``: every op (delegated ones read from inside the
        delegates), the number of delegate calls, and the ops that run outside them.
    """
    ops: collections.Counter = collections.Counter()
    portable: collections.Counter = collections.Counter()
    partitions = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        if name == "executorch_call_delegate":
            partitions += 1
            lowered = getattr(graph_module, node.args[0].target)
            for inner in lowered.original_module.graph_module.graph.nodes:
                if inner.op == "call_function" and _op_name(inner.target) not in _IGNORED:
                    ops[_op_name(inner.target)] += 1
        elif name not in _IGNORED:
            ops[name] += 1
            portable[name] += 1
    return dict(sorted(ops.items())), partitions, dict(sorted(portable.items()))


def _op_name(target) -> str:
    """``aten.convolution``-style name without the overload (``.default``)."""
    parts = getattr(target, "__name__", str(target)).split(".")
    return ".".join(parts[:-1]) if len(parts) > 2 else parts[0]


def check(artifact: Artifact, ctx: CompileContext) -> None:
    """Nothing on portable kernels but the allowed ops (one partition if none), when the target asks.

    The int8 concats that kept gathers read run outside with them (``fold_concat_qdq``), so
    they count as allowed wherever ``aten.index_select`` is.
    """
    opts = ctx.options or Options()
    parts, left = artifact.extra.get("partitions"), dict(artifact.extra.get("non_delegated") or {})
    if "aten.index_select" in opts.allowed_outside and left.get("aten.cat"):
        left["aten.cat"] -= min(left["aten.cat"], artifact.extra.get("gather_concats", 0))
    left = {k: v for k, v in left.items() if k not in opts.allowed_outside and v}
    if opts.require_full_delegation and (left or (parts != 1 and not opts.allowed_outside)):
        raise EdgecnError(
            f"{artifact.path.name}: XNNPACK took {parts} partition(s) and left {sum(left.values())} op(s) outside "
            f"({', '.join(f'{k} x{v}' for k, v in left.items()) or 'none'})",
            "pick lowering choices that remove these ops ([lowering] in the target file, or --lowering auto), "
            "or set require_full_delegation = false under [executorch] in the target file")


def measure(model, example, repeats: int = 20) -> float:
    """Median seconds per fp32 inference of ``model`` as a .pte on this host."""
    return time_fp32(compile, model, example, repeats)


def tools() -> dict[str, str]:
    return package_versions("executorch", "torch", "torchao")


@register_backend("executorch", suffix=".pte", precisions=("fp32", "int8"))
class ExecuTorch:
    Options = Options
    compile, measure, tools, check = staticmethod(compile), staticmethod(measure), staticmethod(tools), staticmethod(check)
    int8_graph = staticmethod(int8_graph)
