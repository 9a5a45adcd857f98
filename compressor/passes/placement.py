"""Q/DQ placement beyond onnxruntime's op-type switch, driven by the target's QuantScheme.

onnxruntime quantizes every input of every op of a listed type. Explicit-quantization targets
(TensorRT) want two exceptions it cannot express: an Add of a constant bias stays float (it
fuses into the MatMul before it), and a residual Add keeps Q/DQ only on its skip input, so the
weighted op feeding its other input can absorb the Add. No quantizer library exposes this
per-input choice (NVIDIA's ModelOpt patches onnxruntime's internals for it), hence these
few graph edits.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from targets.base import QuantScheme


def select_nodes(src: Path, scheme: QuantScheme) -> tuple[str | onnx.ModelProto, dict]:
    """The model to quantize and quantize_static's op/node selection for the scheme.

    Residual-op nodes fed by a constant (a bias Add) are excluded by name; unnamed nodes get
    names so they can be.
    """
    if not scheme.op_types:
        return str(src), {}
    model = onnx.load(str(src))
    graph = model.graph
    constants = _constants(graph)
    for index, node in enumerate(graph.node):
        node.name = node.name or f"{node.op_type}_{index}"
    excluded = [
        n.name
        for n in graph.node
        if n.op_type in scheme.residual_ops and any(i in constants for i in n.input)
    ]
    return model, {"op_types_to_quantize": list(scheme.op_types), "nodes_to_exclude": excluded}


def keep_fused_inputs_float(path: Path, scheme: QuantScheme) -> int:
    """Drop the Q/DQ on each residual join's input that a weighted op produces; returns how many.

    When both inputs come from weighted ops (a projection shortcut), the deeper branch (the
    main path) stays float and the shortcut keeps its Q/DQ.
    """
    if not scheme.residual_ops:
        return 0
    model = onnx.load(str(path))
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    weighted = set(scheme.op_types) - set(scheme.residual_ops)
    constants, depth = _constants(graph), _depths(graph)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    unquantized = 0
    for node in graph.node:
        if node.op_type not in scheme.residual_ops:
            continue
        sources = [_quantized_source(producer, name) for name in node.input]
        if None in sources:
            continue  # not a quantized residual join
        fused = [
            i for i, s in enumerate(sources) if _from_weighted(producer, s, weighted, constants)
        ]
        if fused:
            pick = max(fused, key=lambda i: depth.get(sources[i], 0))
            dequantized = node.input[pick]
            _read_float(consumers[dequantized], dequantized, sources[pick], node, scheme)
            unquantized += 1
    _drop_unused(graph)
    onnx.save(model, str(path))
    return unquantized


def _read_float(
    readers: list, dequantized: str, source: str, join: onnx.NodeProto, scheme: QuantScheme
) -> None:
    """Point the join, and the other unquantized readers of the same DQ, at the float source.

    onnxruntime lets every reader of a quantized tensor share its DQ (a Shape, a Transpose);
    once the join no longer needs the pair, they read the float tensor again.
    """
    for reader in readers:
        if reader is join or reader.op_type not in scheme.op_types:
            for i, name in enumerate(reader.input):
                if name == dequantized:
                    reader.input[i] = source


def _constants(graph: onnx.GraphProto) -> set[str]:
    names = {i.name for i in graph.initializer}
    return names | {o for n in graph.node if n.op_type == "Constant" for o in n.output}


def _depths(graph: onnx.GraphProto) -> dict[str, int]:
    """Longest path (in nodes) from the graph inputs to each tensor; ONNX nodes are sorted."""
    depth: dict[str, int] = {}
    for node in graph.node:
        here = 1 + max((depth.get(i, 0) for i in node.input), default=0)
        depth.update(dict.fromkeys(node.output, here))
    return depth


def _quantized_source(producer: dict, name: str) -> str | None:
    """The float tensor behind a QuantizeLinear -> DequantizeLinear pair feeding name, or None."""
    dq = producer.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producer.get(dq.input[0])
    return q.input[0] if q is not None and q.op_type == "QuantizeLinear" else None


def _from_weighted(producer: dict, name: str, weighted: set[str], constants: set[str]) -> bool:
    """Whether name comes from a weighted op, through a bias Add or an unfolded BatchNorm."""
    node = producer.get(name)
    while node is not None and (
        node.op_type == "BatchNormalization"
        or (node.op_type == "Add" and any(i in constants for i in node.input))
    ):
        data = next((i for i in node.input if i not in constants), None)
        node = producer.get(data)
    return node is not None and node.op_type in weighted


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove Q/DQ nodes left without consumers, then initializers nothing reads."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [
            n
            for n in graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear")
            and not any(o in used for o in n.output)
        ]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {i for n in graph.node for i in n.input} | {i.name for i in graph.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
