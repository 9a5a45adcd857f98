"""1-D convolutions and pools (audio models) as their 2-D forms: TFLite has only 2-D kernels.

Conv/MaxPool/AveragePool over an [N, C, L] input become Unsqueeze → the op over [N, C, 1, L]
(kernel [1, k], pads [0, b, 0, e]) → Squeeze. The layout pass keeps the unit axis where it
costs no TRANSPOSE, so chained 1-D convolutions stay channels-last in between.
"""

from __future__ import annotations

import numpy as np

from targets.tflite.graph import Node, OnnxGraph

ONE_D_OPS = {"Conv", "MaxPool", "AveragePool"}


def rewrite_1d(graph: OnnxGraph) -> OnnxGraph:
    """Rewrite every 1-D Conv/MaxPool/AveragePool of graph as Unsqueeze → 2-D op → Squeeze."""
    nodes = []
    for node in graph.nodes:
        shape = graph.shapes.get(node.inputs[0]) if node.inputs else None
        if node.op_type not in ONE_D_OPS or shape is None or len(shape) != 3:
            nodes.append(node)
            continue
        nodes.extend(_as_2d(graph, node, shape))
    graph.nodes = nodes
    return graph


def _as_2d(graph: OnnxGraph, node: Node, shape: tuple) -> list[Node]:
    axes = f"{node.name}/unit_axis"
    graph.consts[axes] = np.array([2], np.int64)
    wide_in, wide_out = f"{node.name}/in2d", f"{node.name}/out2d"
    out = node.outputs[0]
    graph.shapes[wide_in] = (shape[0], shape[1], 1, shape[2])
    out_shape = graph.shapes[out]
    graph.shapes[wide_out] = (out_shape[0], out_shape[1], 1, out_shape[2])
    inputs = [wide_in, *node.inputs[1:]]
    if node.op_type == "Conv":
        weight = f"{node.name}/weight2d"
        graph.consts[weight] = graph.consts[node.inputs[1]][:, :, None, :]
        if node.inputs[1] in graph.const_quant:
            graph.const_quant[weight] = graph.const_quant[node.inputs[1]]
        inputs[1] = weight
    attrs = dict(node.attrs)
    for key in ("kernel_shape", "strides", "dilations"):
        if key in attrs:
            attrs[key] = [1, *attrs[key]]
    if "pads" in attrs:
        attrs["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
    if "kernel_shape" not in attrs and node.op_type == "Conv":
        attrs["kernel_shape"] = [1, int(graph.consts[node.inputs[1]].shape[-1])]
    for tensor in (wide_in, wide_out):  # int8: the unit axis changes no params
        source = node.inputs[0] if tensor == wide_in else out
        if source in graph.act_quant:
            graph.act_quant[tensor] = graph.act_quant[source]
    return [
        Node("Unsqueeze", f"{node.name}/unsqueeze", [node.inputs[0], axes], [wide_in]),
        Node(node.op_type, node.name, inputs, [wide_out], attrs),
        Node("Squeeze", f"{node.name}/squeeze", [wide_out, axes], [out]),
    ]
