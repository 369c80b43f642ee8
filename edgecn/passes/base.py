"""What every rewrite shares: the traced graph, node queries, the pass registry and driver.

Rewrites work on a ``torch.fx`` graph in which channel gathers and shuffles are single
nodes (leaf modules), so a pass sees the constructs it lowers, and every other module of
``torch.nn`` (convs, BNs, ReLUs, linears) is one ``call_module`` node it can replace.
"""

from __future__ import annotations

import copy


import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from edgecn.errors import EdgecnError
from edgecn.layers.index import ChannelGather
from edgecn.layers.shuffle import ChannelShuffle
from edgecn.registry import Registry

PASSES: Registry[type] = Registry("pass", package="edgecn.passes")


def register_pass(name: str):
    """Class decorator: add a ``Pass`` subclass to ``PASSES`` under ``name``."""
    def add(cls):
        cls.name = name
        return PASSES.register(name)(cls)
    return add


class _Tracer(fx.Tracer):
    # Gathers and shuffles stay one node each: they are what the passes look for.
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (ChannelGather, ChannelShuffle)) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    """A ``GraphModule`` copy of ``model``; raises EdgecnError if it cannot be traced."""
    model = copy.deepcopy(model).eval()
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises many types for data-dependent control flow
        raise EdgecnError(f"cannot trace {type(model).__name__} into a graph to rewrite ({e})",
                          "remove data-dependent control flow from forward(), or build with no rewrites") from e
    return fx.GraphModule(model, graph, class_name=type(model).__name__)


def propagate(gm: fx.GraphModule, example: torch.Tensor) -> None:
    """Record every node's output shape in ``node.meta["tensor_meta"]``."""
    with torch.no_grad():
        ShapeProp(gm).propagate(example)


def find(gm: fx.GraphModule, name: str) -> fx.Node | None:
    return next((n for n in gm.graph.nodes if n.name == name), None)


def module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def is_module(gm: fx.GraphModule, node: fx.Node, kind) -> bool:
    return isinstance(module(gm, node), kind)


def is_relu(gm: fx.GraphModule, node: fx.Node) -> bool:
    return is_module(gm, node, nn.ReLU) or (node.op == "call_function" and node.target in (F.relu, torch.relu))


def shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(node.meta["tensor_meta"].shape)


def add_module(gm: fx.GraphModule, near: str, suffix: str, mod: nn.Module) -> str:
    """Register ``mod`` beside the module path ``near`` under a fresh name; returns its path."""
    parent, _, leaf = near.rpartition(".")
    base = f"{leaf}_{suffix}" if leaf else suffix
    names = {n for n, _ in gm.named_modules()}
    name, i = base, 1
    while (f"{parent}.{name}" if parent else name) in names:
        name, i = f"{base}{i}", i + 1
    path = f"{parent}.{name}" if parent else name
    gm.add_submodule(path, mod.eval())
    return path


def erase_dead(gm: fx.GraphModule, nodes) -> None:
    """Erase the given nodes that no longer have users, last first."""
    for n in reversed(list(nodes)):
        if n.graph is gm.graph and not n.users:
            gm.graph.erase_node(n)


def finish(gm: fx.GraphModule) -> None:
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()


def macs(mod: nn.Module, out_shape) -> int:
    """Multiply-adds of one conv (output spatial size from ``out_shape``) or linear, for one sample."""
    if isinstance(mod, nn.Conv2d):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        return int(mod.out_channels * out_shape[2] * out_shape[3] * (mod.in_channels // mod.groups) * k)
    if isinstance(mod, nn.Linear):
        return int(mod.in_features * mod.out_features)
    return 0


def narrow(gm: fx.GraphModule, x: fx.Node, start: int, length: int) -> fx.Node:
    return gm.graph.call_function(torch.narrow, (x, 1, int(start), int(length)))


def cat(gm: fx.GraphModule, parts: list[fx.Node]) -> fx.Node:
    return parts[0] if len(parts) == 1 else gm.graph.call_function(torch.cat, (parts, 1))


class Pass:
    """One rewrite: finds its sites, lists the legal choices at each, applies one.

    Subclasses set ``keep`` (the choice that leaves a site alone) and implement
    ``enabled``, ``sites``, ``legal``, ``decide`` and ``apply``.
    """

    name = ""
    keep = "keep"

    def enabled(self, cfg) -> bool:
        return True

    def sites(self, gm: fx.GraphModule) -> list[str]:
        """Names of the nodes this pass may rewrite."""
        raise NotImplementedError

    def legal(self, gm: fx.GraphModule, node: fx.Node, cfg) -> dict[str, str]:
        """Choices that are exact at ``node`` (``keep`` included), mapped to why."""
        raise NotImplementedError

    def decide(self, gm, node, cfg, legal: dict[str, str]) -> tuple[str, str]:
        """The choice (and reason) when no measurement is made."""
        raise NotImplementedError

    def measured(self, cfg) -> bool:
        """Whether this site's choice is left to ``measure`` (an "auto" setting)."""
        return False

    def apply(self, gm: fx.GraphModule, node: fx.Node, choice: str) -> tuple[int, int]:
        """Rewrite ``node`` in place with ``choice``; returns (macs_before, macs_after)."""
        raise NotImplementedError

    def run(self, gm: fx.GraphModule, cfg, example: torch.Tensor, measure=None,
            choices: dict[str, str] | None = None) -> tuple[list[dict], list[dict]]:
        """Rewrite every site of ``gm`` in place; returns ``(rewritten, kept)``: one entry per
        site, with the choice and the reason for it, kept sites included.

        ``choices`` maps ``"pass:site"`` to the form a cost table chose there (``edgecn.cost``);
        a site it names takes that form when it is legal, every other site follows ``cfg``.
        """
        choices = choices or {}
        report, kept, recorded = [], [], False
        for name in self.sites(gm):
            node = find(gm, name)
            if node is None:
                continue
            if not recorded:  # once per pass; after that each rewrite records what it changed
                finish(gm)
                propagate(gm, example)
                recorded = True
            legal = self.legal(gm, node, cfg)
            site = node.target if node.op == "call_module" else node.name
            chosen = choices.get(f"{self.name}:{site}")
            if chosen in legal:
                choice, reason = chosen, f"cost table: fastest measured form ({legal[chosen]})"
            elif measure is not None and self.measured(cfg) and len(legal) > 1:
                finish(gm)
                choice, reason = self._time(gm, name, legal, measure)
            else:
                choice, reason = self.decide(gm, node, cfg, legal)
            if choice == self.keep:
                kept.append({"pass": self.name, "site": site, "choice": choice, "reason": reason})
                continue
            signatures = {n: _signature(n) for n in gm.graph.nodes}
            before, after = self.apply(gm, node, choice)
            gm.graph.lint()
            # Every decision reads recorded shapes: record those of the nodes this rewrite made or
            # changed, and of the nodes downstream whose shape that changes.
            touched = [n for n in gm.graph.nodes if signatures.get(n) != _signature(n)]
            if not record_shapes(gm, touched):
                finish(gm)
                propagate(gm, example)
            report.append({"pass": self.name, "site": site, "choice": choice, "reason": reason,
                           "macs_before": before, "macs_after": after})
        finish(gm)
        return report, kept

    def _time(self, gm, name: str, legal: dict[str, str], measure) -> tuple[str, str]:
        times = {}
        for choice in legal:
            trial = copy.deepcopy(gm)
            if choice != self.keep:
                self.apply(trial, find(trial, name), choice)
                finish(trial)
            times[choice] = float(measure(trial))
        best = min(times, key=times.get)
        listing = ", ".join(f"{c} {t * 1e3:.3f} ms" for c, t in times.items())
        return best, f"fastest when measured ({listing})"


def _signature(node: fx.Node) -> tuple:
    """What decides a node's output: op, target and inputs. A module path names one module for
    the node's life: rewrites register new modules under fresh paths (``add_module``)."""
    return node.op, node.target, node.args, tuple(node.kwargs.items())


def record_shapes(gm: fx.GraphModule, nodes) -> bool:
    """Record the output shapes of ``nodes`` and of every node downstream whose input shape they
    change, by running just those nodes on zeros of their inputs' recorded shapes.

    Returns False (nothing changed) when an input has no recorded shape; the caller then
    records every shape with ``propagate``.
    """
    from torch.fx.node import map_aggregate, map_arg
    from torch.fx.passes.shape_prop import _extract_tensor_metadata

    todo, values, run = set(nodes), {}, fx.Interpreter(gm, garbage_collect_values=False)

    def value(arg: fx.Node):
        if arg in values:
            return values[arg]
        if arg.op == "get_attr":
            return run.fetch_attr(arg.target)
        meta = arg.meta.get("tensor_meta")
        if meta is None:
            raise LookupError(arg.name)
        return _zeros(meta)

    updates = {}
    with torch.no_grad():
        for n in gm.graph.nodes:
            if n not in todo or n.op in ("placeholder", "output"):
                continue
            try:
                args, kwargs = map_arg(n.args, value), map_arg(n.kwargs, value)
            except LookupError:
                return False
            out = values[n] = getattr(run, n.op)(n.target, args, kwargs)  # the Interpreter's own dispatch
            meta = map_aggregate(out, lambda v: _extract_tensor_metadata(v) if isinstance(v, torch.Tensor) else v)
            if _shapes(n.meta.get("tensor_meta")) != _shapes(meta):
                todo.update(n.users)
            updates[n] = (meta, type(out))
    for n, (meta, kind) in updates.items():
        n.meta["tensor_meta"], n.meta["type"] = meta, kind
    return True


def _zeros(meta):
    """Zeros shaped like recorded metadata (a TensorMetadata, or a tuple/list of them)."""
    if isinstance(meta, TensorMetadata):
        return torch.zeros(meta.shape, dtype=meta.dtype)
    if isinstance(meta, (tuple, list)):
        return type(meta)(_zeros(m) for m in meta)
    return meta


def _shapes(meta) -> object:
    if meta is None:
        return None
    if isinstance(meta, TensorMetadata):
        return tuple(meta.shape), meta.dtype
    if isinstance(meta, (tuple, list)):
        return tuple(_shapes(m) for m in meta)
    return meta
