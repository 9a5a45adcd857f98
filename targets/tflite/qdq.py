"""Fold ONNX QuantizeLinear/DequantizeLinear pairs into tensor quantization parameters.

After folding the graph reads as float: activations carry `act_quant` (scale, zero point of the
Q that followed them), weights are int8/int32 constants with `const_quant`, and a tensor that
was quantized twice with different params gets an explicit "Requantize" node.
"""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite.graph import Node, OnnxGraph
from targets.tflite.writer import QuantParams

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def fold_qdq(graph: OnnxGraph) -> OnnxGraph:
    """Remove every Q/DQ node, moving its parameters onto tensors; returns the same graph."""
    alias: dict[str, str] = {}
    kept: list[Node] = []
    for node in graph.nodes:
        if node.op_type == "DequantizeLinear" and graph.is_const(node.inputs[0]):
            _fold_weight(graph, node)
        elif node.op_type == "QuantizeLinear" and graph.is_const(node.inputs[0]):
            _fold_const_quantize(graph, node)
        elif node.op_type == "QuantizeLinear":
            _fold_activation(graph, node, alias, kept)
        elif node.op_type == "DequantizeLinear":
            source = node.inputs[0]
            if source not in alias:
                raise UnsupportedOp(
                    f"DequantizeLinear '{node.name}' reads '{source}', which no QuantizeLinear "
                    "produced; the tflite target lowers Q/DQ graphs from onnxruntime's quantizer."
                )
            alias[node.outputs[0]] = alias[source]
        else:
            kept.append(node)
    for node in kept:
        node.inputs = [alias.get(name, name) for name in node.inputs]
    graph.outputs = [(public, alias.get(inner, inner)) for public, inner in graph.outputs]
    graph.nodes = kept
    return graph


def usable(params: QuantParams) -> bool:
    """False for the params onnxruntime gives a tensor with an infinite range (scale inf/0)."""
    scale = np.asarray(params.scale)
    return bool(np.all(np.isfinite(scale)) and np.all(scale > 0))


def _params(graph: OnnxGraph, node: Node) -> QuantParams:
    scale = np.atleast_1d(graph.consts[node.inputs[1]]).astype(np.float64)
    if len(node.inputs) > 2 and node.inputs[2]:
        zero = np.atleast_1d(graph.consts[node.inputs[2]]).astype(np.int64)
    else:
        zero = np.zeros_like(scale, dtype=np.int64)
    axis = int(node.attrs.get("axis", 1)) if scale.size > 1 else 0
    return QuantParams(tuple(scale.tolist()), tuple(zero.tolist()), axis)


def _fold_weight(graph: OnnxGraph, node: Node) -> None:
    """DQ(int8 weight or int32 bias) → a quantized constant."""
    graph.consts[node.outputs[0]] = graph.consts[node.inputs[0]]
    params = _params(graph, node)
    if not usable(params):  # its Q kept the float constant
        return
    if params.axis < 0:
        params = QuantParams(
            params.scale, params.zero_point, params.axis + graph.consts[node.inputs[0]].ndim
        )
    graph.const_quant[node.outputs[0]] = params


def _fold_const_quantize(graph: OnnxGraph, node: Node) -> None:
    """Q(float constant) → the int8 constant it stands for; its DQ then folds as a weight."""
    params = _params(graph, node)
    value = graph.consts[node.inputs[0]].astype(np.float64)
    if not usable(params):
        graph.consts[node.outputs[0]] = graph.consts[node.inputs[0]]
        return
    scale, zero = np.asarray(params.scale), np.asarray(params.zero_point)
    if scale.size > 1:
        shape = [1] * value.ndim
        shape[params.axis] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    graph.consts[node.outputs[0]] = np.clip(np.round(value / scale) + zero, -128, 127).astype(
        np.int8
    )


def _fold_activation(graph: OnnxGraph, node: Node, alias: dict[str, str], kept: list[Node]) -> None:
    """Q(activation): the float tensor carries the params; a second, different Q requantizes."""
    source, params = alias.get(node.inputs[0], node.inputs[0]), _params(graph, node)
    if not usable(params):  # e.g. an attention mask holding -inf: the tensor stays float
        alias[node.outputs[0]] = source
        graph.unquantizable.append(source)
        return
    current = graph.act_quant.get(source)
    if current is None or current.same_as(params):
        graph.act_quant[source] = params
        alias[node.outputs[0]] = source
        return
    target = node.outputs[0]
    graph.act_quant[target] = params
    graph.shapes.setdefault(target, graph.shapes.get(source, ()))
    kept.append(Node("Requantize", node.name, [source], [target]))
    alias[target] = target
