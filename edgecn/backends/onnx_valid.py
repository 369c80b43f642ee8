"""Spec checks every ONNX file edgecn writes must pass, run the way NVIDIA users run them.

- ``onnx.checker`` with ``full_check=True``: the spec, including that nodes are in topological
  order. onnxruntime sorts a graph itself, so a file it runs can still break this rule, and
  TensorRT's ONNX parser reads nodes in file order.
- onnx shape inference in strict mode: every tensor gets a type and shape.
- ``polygraphy check lint`` (Polygraphy is NVIDIA's ONNX/TensorRT debugging tool; its lint runs
  the checker and onnxruntime node by node and needs no TensorRT).

``topological_order`` repairs the one defect seen in practice: converters that append nodes
(``convert_float_to_float16``'s input casts) leave the graph out of order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from edgecn.errors import EdgecnError

LINT_TIMEOUT_S = 600


def topological_order(model) -> None:
    """Reorder ``model.graph.node`` in place so every input is produced before it is read.

    Stable: nodes already in order keep their relative order (Kahn's algorithm, always taking
    the earliest ready node), so a graph in order is left unchanged.
    """
    import heapq

    nodes = list(model.graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    waits = [0] * len(nodes)
    readers: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for src in {producer[x] for x in _inputs(n) if x in producer and producer[x] != i}:
            waits[i] += 1
            readers.setdefault(src, []).append(i)
    ready = [i for i, w in enumerate(waits) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in readers.get(i, []):
            waits[j] -= 1
            if waits[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(nodes):
        raise EdgecnError("the ONNX graph has a cycle and cannot be put in topological order",
                          "report this with the model name; the exporter produced a broken graph")
    del model.graph.node[:]
    model.graph.node.extend(nodes[i] for i in order)


def _inputs(node) -> list[str]:
    """A node's inputs, including those its subgraphs (If/Loop bodies) read from outside."""
    names = [x for x in node.input if x]
    for attr in node.attribute:
        for g in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for n in g.node:
                names += _inputs(n)
    return names


def spec_problems(path: Path) -> list[str]:
    """What ``onnx.checker`` (full) and strict shape inference say about ``path``; empty if valid."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        return [f"onnx.checker: {_first_line(e)}"]
    try:
        onnx.shape_inference.infer_shapes_path(str(path), str(path) + ".inferred", check_type=True,
                                               strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as e:
        return [f"onnx shape inference: {_first_line(e)}"]
    finally:
        Path(str(path) + ".inferred").unlink(missing_ok=True)
    return []


def lint_problems(path: Path) -> list[str]:
    """Errors from ``polygraphy check lint`` (run in a child process; its logs stay out of the build's)."""
    with tempfile.TemporaryDirectory(prefix="edgecn-lint-") as tmp:
        report = Path(tmp) / "lint.json"
        cmd = [sys.executable, "-c", "import sys; from polygraphy.tools import main; sys.exit(main())",
               "check", "lint", str(path), "-o", str(report)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=LINT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return [f"polygraphy check lint did not finish in {LINT_TIMEOUT_S} s"]
        if not report.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            if "No module named 'polygraphy'" in proc.stderr:
                raise EdgecnError("polygraphy is not installed", "pip install 'polygraphy==0.53.6' onnx-graphsurgeon")
            return [f"polygraphy check lint failed to run (exit {proc.returncode}): {tail}"]
        entries = json.loads(report.read_text(encoding="utf-8")).get("lint_entries", [])
    found = [f"polygraphy lint ({e.get('source', '?')}): {_first_line(e.get('message', ''))}"
             for e in entries if e.get("level") in ("exception", "error")]
    return list(dict.fromkeys(found))


def _first_line(e) -> str:
    text = " ".join(str(e).split())
    return text[:300]
