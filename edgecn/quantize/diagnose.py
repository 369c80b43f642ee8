"""Where an int8 graph departs from its float model: one row per activation quantization site.

A build whose int8 artifact loses accuracy needs to say which layer loses it and why, not only
that it does. The converted PT2E graph (the quantized reference that each backend's converter
turns into the artifact) quantizes every activation once, at a ``quantize_per_tensor`` followed
by its ``dequantize_per_tensor``. Switching every such pair off but one, with the weights left
in int8, gives the logit SQNR that this one site costs on its own; the sites that cost most are
where the artifact departs from float, and their range and the spread of their channels say
why: one scale for channels of very different widths (a concatenation, a BatchNorm reading
one), a few extreme values setting the range, or weights that do not survive rounding.

Measured on a trained CondenseNet-74-c8 at 224x224 (24 held-out images): without channel
equalization, each dense-block concat alone cost the logits down to -3.4 dB (range +-1,300 for
channels whose median peak is 5.6); with it, the BN-ReLU outputs in front of each dense layer's
1x1 conv alone gave -0.8 to 18 dB (range 1,150 where the channels the conv reads stay below 8).
After the fixes those tell of, every site alone stays at 24.4 dB or more.
"""

from __future__ import annotations

import dataclasses

from edgecn.metrics import sqnr_db


@dataclasses.dataclass(frozen=True)
class Site:
    """One activation quantization site and what it costs alone.

    Attributes:
        node: the graph node whose output is quantized.
        layer: the model's module it comes from (qualified name), or the node name.
        low, high: its int8 range (the real values of int8 -128 and 127).
        channel_spread: widest channel's max |value| over the median channel's, on the images
            diagnosed (1.0 for a tensor without channels).
        sqnr_db: logit SQNR against the float model with only this site in int8 (weights in
            int8 everywhere); None when identical.
    """

    node: str
    layer: str
    low: float
    high: float
    channel_spread: float
    sqnr_db: float | None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def int8_sites(quantized, reference, images) -> tuple[float | None, list[Site]]:
    """The weights-only logit SQNR and every activation site of ``quantized``, costliest first.

    Args:
        quantized: a converted PT2E graph (``convert_pt2e``), batch-1; it is not modified.
        reference: the float model it was made from (batch-any).
        images: a few inputs (a handful is enough: each site costs one pass over them).

    Returns:
        ``(weights_only_sqnr, sites)``.
    """
    import copy

    import torch
    from torch import fx

    gm = copy.deepcopy(quantized)
    qd = torch.ops.quantized_decomposed
    enabled: set[int] = set()
    sites: list[tuple[int, fx.Node]] = []
    spreads: dict[str, torch.Tensor] = {}

    def switch(i: int, name: str):
        def qdq(x, scale, zero_point, qmin, qmax, dtype):
            if x.dim() == 4:
                peak = x.detach().abs().amax(dim=(0, 2, 3))
                spreads[name] = peak if name not in spreads else torch.maximum(spreads[name], peak)
            if i not in enabled:
                return x
            return (torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale
        return qdq

    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target == qd.quantize_per_tensor.default \
                and all(u.target == qd.dequantize_per_tensor.default for u in node.users):
            i = len(sites)
            sites.append((i, node))
            source = node.args[0]
            node.target = switch(i, _name(source, node))
            for dq in node.users:
                dq.target = _identity
    gm.recompile()

    def logits():
        with torch.no_grad():
            return torch.cat([gm(x.unsqueeze(0)) for x in images])

    with torch.no_grad():
        ref = reference(images).numpy()
    weights_only = sqnr_db(ref, logits().numpy())
    rows = []
    for i, node in sites:
        enabled.clear()
        enabled.add(i)
        got = logits().numpy()
        source = node.args[0]
        name = _name(source, node)
        scale, zero, qmin, qmax = (float(a) for a in node.args[1:5])
        peak = spreads.get(name)
        spread = 1.0 if peak is None or not bool((peak > 0).any()) else \
            float(peak.max() / peak[peak > 0].median())
        rows.append(Site(name, _layer(source) or name, (qmin - zero) * scale, (qmax - zero) * scale, spread,
                         sqnr_db(ref, got)))
    return weights_only, sorted(rows, key=lambda s: float("inf") if s.sqnr_db is None else s.sqnr_db)


def _name(source, node) -> str:
    return getattr(source, "name", None) or node.name


def _identity(x, *args):
    return x


def _layer(node) -> str | None:
    """The qualified name of the module ``node`` was traced in, when the export recorded it."""
    stack = getattr(node, "meta", {}).get("nn_module_stack")
    if not stack:
        return None
    return str(list(stack.values())[-1][0]).removeprefix("L['self'].")


def cause(site: Site) -> str:
    """A short reading of why ``site`` loses precision."""
    if site.channel_spread >= 16:
        return (f"its channels differ {site.channel_spread:.0f}x in range under one int8 scale: "
                "the narrow ones get a few levels")
    return "its values span the range evenly: the loss is rounding spread over the graph"


def summary(weights_only: float | None, sites: list[Site], top: int = 5) -> list[str]:
    """Lines for a person: the weights' share and the costliest sites with their likely cause."""
    lines = [f"weights alone in int8: {'identical' if weights_only is None else f'{weights_only:.1f} dB'} logit SQNR"]
    for s in sites[:top]:
        sq = "identical" if s.sqnr_db is None else f"{s.sqnr_db:.1f} dB"
        lines.append(f"{s.layer} ({s.node}): {sq} alone; range [{s.low:.3g}, {s.high:.3g}]; {cause(s)}")
    return lines
