"""Graph rewrites before lowering: ONNX patterns that one TFLite op covers.

onnxruntime's basic optimizations (run by the pipeline's cleanup) decompose HardSwish into
HardSigmoid(x, 1/6, 1/2) · x; TFLite has HARD_SWISH, so the pair is fused back.
"""

from __future__ import annotations

import math

from targets.tflite.graph import Node, OnnxGraph


def fuse_hard_swish(graph: OnnxGraph) -> OnnxGraph:
    """Mul(x, HardSigmoid(x, alpha=1/6, beta=0.5)) → HardSwish(x) when the sigmoid has one reader."""
    readers = graph.consumers()
    dropped: set[str] = set()
    for node in graph.nodes:
        if node.op_type != "HardSigmoid" or not _is_hard_swish_gate(node):
            continue
        users = readers.get(node.outputs[0], [])
        if (
            len(users) != 1
            or users[0].op_type != "Mul"
            or node.outputs[0] in graph.internal_outputs()
        ):
            continue
        mul = users[0]
        other = [name for name in mul.inputs if name != node.outputs[0]]
        if other != [node.inputs[0]]:
            continue
        mul.op_type, mul.inputs, mul.attrs = "HardSwish", [node.inputs[0]], {}
        dropped.add(node.name)
    graph.nodes = [n for n in graph.nodes if n.name not in dropped]
    return graph


def _is_hard_swish_gate(node: Node) -> bool:
    alpha, beta = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
    return math.isclose(alpha, 1 / 6, rel_tol=1e-5) and math.isclose(beta, 0.5, rel_tol=1e-6)


def collapse_reshapes(graph: OnnxGraph) -> OnnxGraph:
    """Reshape(Reshape(x)) → Reshape(x): a chain is one reshape to its last shape (XNNPACK
    does not delegate the flat 1-D reshape such chains go through with a dynamic batch)."""
    producers = {n.outputs[0]: n for n in graph.nodes if n.op_type in RESHAPES}
    for node in graph.nodes:
        source = producers.get(node.inputs[0]) if node.op_type in RESHAPES else None
        while source is not None and node.op_type == "Reshape":
            node.inputs[0] = source.inputs[0]
            source = producers.get(node.inputs[0])
    read = {name for n in graph.nodes for name in n.inputs} | graph.internal_outputs()
    graph.nodes = [n for n in graph.nodes if n.op_type not in RESHAPES or n.outputs[0] in read]
    return graph


RESHAPES = {"Reshape", "Flatten"}


def fuse_gelu(graph: OnnxGraph) -> OnnxGraph:
    """x · 0.5 · (1 + Erf(x / √2)) (torch's exact GELU, any Mul order) → Gelu(x): one GELU op."""
    readers, producers = graph.consumers(), {o: n for n in graph.nodes for o in n.outputs}
    dropped: set[str] = set()
    for erf in [n for n in graph.nodes if n.op_type == "Erf"]:
        scaled = producers.get(erf.inputs[0])
        x = _gelu_input(graph, scaled)
        chain = _sole_readers(graph, readers, erf, 3)
        if x is None or chain is None or len(readers.get(scaled.outputs[0], [])) != 1:
            continue
        add, first, last = chain
        if add.op_type != "Add" or not _has_const(graph, add, erf.outputs[0], 1.0):
            continue
        others = [_other(first, add.outputs[0]), _other(last, first.outputs[0])]
        if {first.op_type, last.op_type} != {"Mul"} or None in others:
            continue
        halves = [o for o in others if graph.is_const(o) and _scalar(graph, o, 0.5)]
        if len(halves) != 1 or [o for o in others if o not in halves] != [x]:
            continue
        last.op_type, last.inputs, last.attrs = "Gelu", [x], {}
        dropped |= {scaled.name, erf.name, add.name, first.name}
    graph.nodes = [n for n in graph.nodes if n.name not in dropped]
    return graph


def _gelu_input(graph: OnnxGraph, node: Node | None) -> str | None:
    """x of Div(x, √2) or Mul(x, 1/√2)."""
    if node is None or node.op_type not in ("Div", "Mul") or not graph.is_const(node.inputs[1]):
        return None
    factor = math.sqrt(2) if node.op_type == "Div" else 1 / math.sqrt(2)
    return node.inputs[0] if _scalar(graph, node.inputs[1], factor) else None


def _sole_readers(graph: OnnxGraph, readers: dict, node: Node, count: int) -> list[Node] | None:
    """The chain of `count` nodes each the only reader of the previous one's output."""
    chain = []
    for _ in range(count):
        users = readers.get(node.outputs[0], [])
        if len(users) != 1 or node.outputs[0] in graph.internal_outputs():
            return None
        node = users[0]
        chain.append(node)
    return chain


def _other(node: Node, name: str) -> str | None:
    rest = [i for i in node.inputs if i != name]
    return rest[0] if len(rest) == 1 and len(node.inputs) == 2 else None


def _has_const(graph: OnnxGraph, node: Node, name: str, value: float) -> bool:
    other = _other(node, name)
    return other is not None and graph.is_const(other) and _scalar(graph, other, value)


def _scalar(graph: OnnxGraph, name: str, value: float) -> bool:
    array = graph.float_const(name).reshape(-1)
    return array.size == 1 and math.isclose(float(array[0]), value, rel_tol=1e-5)
