"""Take the Q/DQ pairs off chosen tensors of a quantized graph, so they are read in float.

Used by the placement rules (tensors int8 cannot represent) and by the tuner (blocks that
lose too much in int8). Weights keep their int8 DequantizeLinear: only activations change.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from compressor.passes.placement import _drop_unused


def drop_qdq(path: Path, tensors: set[str]) -> list[str]:
    """Remove each QuantizeLinear→DequantizeLinear pair on the named float tensors, in place.

    Readers of the dequantized copy read the float tensor again; where the copy is a graph
    output, the float tensor takes its name. Returns the tensors that lost a pair.
    """
    model = onnx.load(str(path))
    graph = model.graph
    outputs = {o.name for o in graph.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            readers.setdefault(node.input[0], []).append(node)
    removed: list[str] = []
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        for dq in readers.get(q.output[0], []):
            # a quantized graph output keeps its name on the DQ; its source becomes "…_Input"
            if q.input[0] in tensors or dq.output[0] in tensors:
                _bypass(graph, dq.output[0], q.input[0], dq.output[0] in outputs)
                removed.append(dq.output[0] if dq.output[0] in outputs else q.input[0])
    _drop_unused(graph)
    onnx.save(model, str(path))
    return sorted(set(removed))


def _bypass(graph: onnx.GraphProto, dequantized: str, source: str, is_output: bool) -> None:
    """Make readers of `dequantized` read `source`; a graph output keeps its name instead."""
    old, new = (source, dequantized) if is_output else (dequantized, source)
    for node in graph.node:
        if is_output and node.op_type == "DequantizeLinear" and node.output[0] == dequantized:
            node.output[0] = f"{dequantized}__bypassed"  # left without readers, then dropped
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if is_output and name == old:
                node.output[i] = new
