"""Take the Q/DQ pairs off chosen tensors of a quantized graph, so they are read in float.

Used by the placement rules (tensors int8 cannot represent) and by the tuner (blocks that
lose too much in int8). Weights keep their int8 DequantizeLinear: only activations change.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from compressor.passes.placement import _drop_unused

REMOVABLE_ACTIVATIONS = ("Relu", "Clip")


def drop_qdq(path: Path, tensors: set[str], fp32: Path | None = None) -> list[str]:
    """Remove each QuantizeLinear→DequantizeLinear pair on the named float tensors, in place.

    Readers of the dequantized copy read the float tensor again; where the copy is a graph
    output, the float tensor takes its name. The quantizer drops a Relu/Clip whose output it
    quantizes (the Q clamps instead): with the pair gone, that activation is put back from the
    fp32 model. Returns the tensors that lost a pair.
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
    if fp32 is not None:
        _restore_activations(graph, onnx.load(str(fp32)).graph, set(removed))
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


def _restore_activations(graph: onnx.GraphProto, fp32: onnx.GraphProto, names: set[str]) -> None:
    """Re-insert the fp32 Relu/Clip producing each named tensor where the quantizer fused it."""
    producer = {o: n for n in graph.node for o in n.output}
    original = {o: n for n in fp32.node for o in n.output}
    inits = {i.name for i in graph.initializer}
    for name in names:
        act, now = original.get(name), producer.get(name)
        if act is None or now is None or act.op_type not in REMOVABLE_ACTIVATIONS:
            continue
        if now.op_type == act.op_type:
            continue
        raw = f"{name}__before_{act.op_type.lower()}"
        now.output[list(now.output).index(name)] = raw
        restored = onnx.NodeProto()
        restored.CopyFrom(act)
        restored.input[0] = raw
        restored.name = f"{act.name or name}__restored"
        graph.node.insert(list(graph.node).index(now) + 1, restored)
        for extra in restored.input[1:]:  # Clip bounds
            source = next((i for i in fp32.initializer if i.name == extra), None)
            if extra and extra not in inits and source is not None:
                graph.initializer.append(source)
                inits.add(extra)
