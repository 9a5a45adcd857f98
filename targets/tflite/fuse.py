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
