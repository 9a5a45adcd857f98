"""Graphs whose index arithmetic depends on the dynamic batch (Shape → Range → Gather).

torch's dynamo export writes `flatten(adaptive_avg_pool(x))` as an as_strided: a Gather over
the flattened tensor with indices computed from the batch size. When those indices are the
identity at batch 1 and at batch 2 (a contiguous view), the Gather is a plain reshape for every
batch: it is rewritten so, the index arithmetic dies, and the batch stays dynamic. Otherwise
the model is specialized to batch 1, where onnxslim folds the arithmetic away.
"""

from __future__ import annotations

import numpy as np
import onnx

from targets.tflite.fuse import collapse_reshapes
from targets.tflite.graph import Node, OnnxGraph, load_graph

PROBE_BATCHES = (1, 2)


def fix_batch(model: onnx.ModelProto, batch: int = 1) -> onnx.ModelProto:
    """A copy of model with every input's leading dim set to batch, constant-folded by onnxslim."""
    import onnxslim

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    return onnxslim.slim(fixed)


def identity_gathers(model: onnx.ModelProto, graph: OnnxGraph) -> dict[str, tuple] | None:
    """Gather node name → output shape (None for the batch dim) when every Gather of graph is
    an in-order read of a 1-D tensor at each probe batch; None when one is not."""
    gathers = [n for n in graph.nodes if n.op_type == "Gather"]
    if not all(_may_read_in_order(graph, n) for n in gathers):
        return None  # decided without the two onnxslim probes
    names = {n.name for n in gathers}
    shapes: dict[str, list[tuple]] = {name: [] for name in names}
    for batch in PROBE_BATCHES:
        probe = load_graph(fix_batch(model, batch))
        found = {n.name: n for n in probe.nodes if n.op_type == "Gather"}
        for name in names:
            node = found.get(name)
            if node is None or not _reads_in_order(probe, node):
                return None
            shapes[name].append(probe.shapes.get(node.outputs[0]))
    return {name: _batch_dynamic(found) for name, found in shapes.items()}


def _may_read_in_order(graph: OnnxGraph, node: Node) -> bool:
    """False when a Gather cannot be an in-order read at any batch: ids the user feeds, or
    constant indices that are not an in-order read of a 1-D tensor (head selects, lookups)."""
    data, indices = node.inputs[:2]
    if indices in graph.inputs:
        return False
    if graph.is_const(indices):
        return _reads_in_order(graph, node)
    shape = graph.shapes.get(data)
    return shape is None or len(shape) == 1


def _reads_in_order(graph: OnnxGraph, node: Node) -> bool:
    if not graph.is_const(node.inputs[1]) or len(graph.shapes.get(node.inputs[0], ())) != 1:
        return False
    indices = graph.consts[node.inputs[1]].reshape(-1)
    return np.array_equal(indices, np.arange(graph.shapes[node.inputs[0]][0] or -1))


def _batch_dynamic(shapes: list[tuple]) -> tuple | None:
    """Merge the probe shapes: dims that change with the batch become None."""
    if any(s is None for s in shapes) or len({len(s) for s in shapes}) != 1:
        return None
    return tuple(a if a == b else None for a, b in zip(shapes[0], shapes[1], strict=True))


def rewrite_identity_gathers(graph: OnnxGraph, shapes: dict[str, tuple]) -> OnnxGraph:
    """Turn the identity Gathers into Reshapes and drop the index arithmetic that fed them."""
    for node in graph.nodes:
        if node.name in shapes:
            target = shapes[node.name]
            shape_name = f"{node.name}/shape"
            graph.consts[shape_name] = np.array([-1 if d is None else d for d in target], np.int64)
            graph.shapes[node.outputs[0]] = target
            node.op_type, node.inputs, node.attrs = "Reshape", [node.inputs[0], shape_name], {}
    return collapse_reshapes(_drop_dead(graph))


def _drop_dead(graph: OnnxGraph) -> OnnxGraph:
    """Remove nodes none of whose outputs is read or is a graph output."""
    while True:
        read = {name for n in graph.nodes for name in n.inputs} | graph.internal_outputs()
        alive = [n for n in graph.nodes if any(o in read for o in n.outputs)]
        if len(alive) == len(graph.nodes):
            return graph
        graph.nodes = alive
