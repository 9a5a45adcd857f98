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
    removed: list[str] = []
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in tensors]:
        source = q.input[0]
        for dq in [n for n in graph.node if n.op_type == "DequantizeLinear"]:
            if dq.input[0] == q.output[0]:
                _bypass(graph, dq.output[0], source, dq.output[0] in outputs)
        removed.append(source)
    _drop_unused(graph)
    onnx.save(model, str(path))
    return sorted(set(removed))


def _bypass(graph: onnx.GraphProto, dequantized: str, source: str, is_output: bool) -> None:
    """Make readers of `dequantized` read `source`; a graph output keeps its name instead."""
    old, new = (source, dequantized) if is_output else (dequantized, source)
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and is_output:
            if node.output and node.output[0] == dequantized:
                node.output[0] = f"{dequantized}__bypassed"
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
