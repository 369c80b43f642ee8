"""Cut a lowered graph into segments that can be compiled and timed alone.

A *cut* is a node every later node reaches only through it: nothing computed before it is
read after it. Between two neighbouring cuts lies a *segment*, one input and one output:
in a DenseNet or CondenseNet a dense layer with its concat, in a SqueezeNet a Fire module's
halves. A segment compiled alone (int8 in, int8 out) runs the same kernels on the same
shapes as inside the whole model, so its time is what it costs there, plus one call of the
runtime and the conversions at its two ends, which ``edgecn.cost.table`` takes off again.
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch
from torch import fx, nn

from edgecn.errors import EdgecnError
from edgecn.passes.base import finish, propagate


@dataclasses.dataclass(frozen=True)
class Segment:
    """The nodes after cut ``start`` up to and including cut ``end`` (names in the graph)."""

    start: str
    end: str
    nodes: tuple[str, ...]


def cuts(gm: fx.GraphModule) -> list[str]:
    """Names of the cut nodes, the input placeholder first, in graph order."""
    order = [n for n in gm.graph.nodes if n.op != "output"]
    pos = {n: i for i, n in enumerate(order)}
    out, reach = [], -1
    for i, n in enumerate(order):
        if n.op == "get_attr":
            continue
        if reach <= i:
            out.append(n.name)
        for u in n.users:
            if u.op != "output":
                reach = max(reach, pos[u])
    placeholders = [n.name for n in order if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise EdgecnError(f"edgecn tune times models of one input; this one has {len(placeholders)}",
                          "tune a model that takes one image tensor, or build with the target's rules")
    return out


def segments(gm: fx.GraphModule, keep: set[str] | None = None) -> list[Segment]:
    """The graph as consecutive segments; with ``keep``, only those cut names (and the input) split it."""
    names = cuts(gm)
    boundaries = [c for i, c in enumerate(names) if i == 0 or keep is None or c in keep]
    order = [n.name for n in gm.graph.nodes if n.op not in ("output", "placeholder", "get_attr")]
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    last = out_node.args[0]
    if not isinstance(last, fx.Node):
        raise EdgecnError("edgecn tune times models of one output tensor; this one returns a structure",
                          "tune a model that returns one tensor, or build with the target's rules")
    if boundaries[-1] != last.name:
        boundaries.append(last.name)
    result, i = [], 0
    for start, end in zip(boundaries, boundaries[1:]):
        body = []
        while i < len(order):
            body.append(order[i])
            i += 1
            if order[i - 1] == end:
                break
        result.append(Segment(start, end, tuple(body)))
    return result


_WEIGHTED = (nn.Conv2d, nn.Linear)


def significant(gm: fx.GraphModule, keep: set[str]) -> set[str]:
    """``keep`` without the cuts that would leave a segment with no convolution or linear layer
    of its own (a pool, a lone ReLU or BN, a flatten, a concat): such a piece joins the segment
    before it (the first piece, the one after).

    A layer without weights takes its input's quantization. Alone, fed the float input every
    segment gets, the int8 quantizers leave it in float (a SqueezeNet max-pool alone ran in
    float, 0.46 ms, 10x its int8 time), while inside the model and in both pairs around it it
    runs in int8: pricing cuts with it subtracted the float time and predicted the model 20%
    fast. Joined to the layer before it, it runs as in the model: int8, its ReLU fused."""
    nodes = {n.name: n for n in gm.graph.nodes}

    def weighted(piece: Segment) -> bool:
        return any(nodes[name].op == "call_module" and isinstance(gm.get_submodule(nodes[name].target), _WEIGHTED)
                   for name in piece.nodes)

    pieces = segments(gm, keep)
    drop = set()
    for i, piece in enumerate(pieces):
        if not weighted(piece) and len(pieces) > 1:
            drop.add(pieces[i - 1].end if i > 0 else piece.end)
    return set(keep) - drop


def micro_model(gm: fx.GraphModule, seg: Segment) -> fx.GraphModule:
    """``seg`` as a model of its own: its start cut's tensor in, its end cut's tensor out."""
    nodes = {n.name: n for n in gm.graph.nodes}
    graph = fx.Graph()
    env = {nodes[seg.start]: graph.placeholder("x")}
    for n in gm.graph.nodes:
        if n.op == "get_attr":
            env[n] = graph.node_copy(n, lambda a: env[a])
    for name in seg.nodes:
        env[nodes[name]] = graph.node_copy(nodes[name], lambda a: env[a])
    graph.output(env[nodes[seg.end]])
    sub = fx.GraphModule(gm, graph, class_name="Segment")
    finish(sub)
    return sub.eval()


def input_shape(gm: fx.GraphModule, seg: Segment) -> tuple[int, ...]:
    node = next(n for n in gm.graph.nodes if n.name == seg.start)
    return tuple(node.meta["tensor_meta"].shape)


def describe(gm: fx.GraphModule, seg: Segment) -> tuple[str, str]:
    """``(key, text)``: a hash of what the segment computes and on which shapes (not its
    weights, which do not change an int8 kernel's time), and a short readable form."""
    nodes = {n.name: n for n in gm.graph.nodes}
    local = {seg.start: "in", **{name: f"%{i}" for i, name in enumerate(seg.nodes)}}
    lines, short = [f"in {list(input_shape(gm, seg))}"], []
    for name in seg.nodes:
        n = nodes[name]
        what, label = _what(gm, n)
        args = [local.get(a.name, "?") for a in n.all_input_nodes]
        meta = n.meta.get("tensor_meta")
        shape = list(meta.shape) if meta is not None and hasattr(meta, "shape") else None
        lines.append(f"{what}({', '.join(args)}) -> {shape}")
        if label:
            short.append(label)
    text = "\n".join(lines)
    return hashlib.sha256(text.encode()).hexdigest()[:20], " ".join(short) or "(no compute)"


def _what(gm: fx.GraphModule, n: fx.Node) -> tuple[str, str]:
    if n.op == "call_module":
        m = gm.get_submodule(n.target)
        if isinstance(m, nn.Conv2d):
            k = "x".join(map(str, m.kernel_size))
            spec = (f"Conv2d({m.in_channels},{m.out_channels},k={k},s={m.stride},p={m.padding},d={m.dilation},"
                    f"g={m.groups},bias={m.bias is not None})")
            dw = "dw" if m.groups == m.in_channels and m.groups > 1 else (f"g{m.groups}" if m.groups > 1 else "")
            return spec, f"conv{k}{dw}:{m.in_channels}>{m.out_channels}"
        if isinstance(m, nn.Linear):
            return f"Linear({m.in_features},{m.out_features})", f"fc:{m.in_features}>{m.out_features}"
        params = {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"
                  and isinstance(v, (int, float, bool, str, tuple))}
        label = type(m).__name__
        if hasattr(m, "index") and isinstance(getattr(m, "index"), torch.Tensor):
            params["index_len"] = int(m.index.numel())
            label = f"gather:{params['index_len']}"
        return f"{type(m).__name__}{sorted(params.items())}", (label if label.startswith("gather") or "Pool" in label
                                                               or "Shuffle" in label else "")
    if n.op == "call_function":
        name = getattr(n.target, "__name__", str(n.target))
        consts = [a for a in n.args if not isinstance(a, (fx.Node, list, tuple))]
        consts += [str(a) for a in n.args if isinstance(a, (list, tuple)) and not any(isinstance(x, fx.Node) for x in a)]
        return f"{name}{consts}{sorted((k, str(v)) for k, v in n.kwargs.items())}", ("cat" if name == "cat" else "")
    if n.op == "call_method":
        return f".{n.target}{[a for a in n.args if not isinstance(a, fx.Node)]}", ""
    return n.op, ""


def shaped(gm: fx.GraphModule, example: torch.Tensor) -> fx.GraphModule:
    """``gm`` with every node's output shape recorded (what ``describe`` and ``input_shape`` read)."""
    propagate(gm, example)
    return gm
