"""What the Q/DQ ONNX graph decided, read back for PT2E: each quantized activation's scale and
zero point, each weighted op's int8 weights and float bias, and every activation's float value
on sample inputs (the graph run with its activation Q/DQ pairs as clips, weights as quantized).

Written by hand: onnxruntime's quantizer writes Q/DQ graphs but has no reader for them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from targets.arithmetic import exact_session

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class Weighted:
    """One ONNX weighted op: its weight as quantized (torch layout: output channels first) and
    its float bias (None when it has none)."""

    node: str
    weight: np.ndarray
    bias: np.ndarray | None


@dataclass
class QdqGraph:
    """The Q/DQ graph's activation qparams by tensor name, its weighted ops in graph order,
    and the float value of every quantized activation on the last sample run."""

    qparams: dict[str, tuple[float, int]]
    weighted: list[Weighted]
    values: dict[str, np.ndarray] = field(default_factory=dict)


def read_qdq(model: onnx.ModelProto) -> QdqGraph:
    """The activation qparams (QuantizeLinear on a non-constant tensor) and weighted ops."""
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    qparams = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in consts:
            scale, zero = consts[node.input[1]], consts[node.input[2]]
            qparams[node.input[0]] = (float(scale), int(zero))
    weighted = []
    for node in model.graph.node:
        weight = _dequantized(node.input[1], producers, consts) if len(node.input) > 1 else None
        if node.op_type in WEIGHTED_OPS and weight is not None:
            weighted.append(_weighted(node, weight, producers, consts, model))
    return QdqGraph(qparams, weighted)


def _dequantized(name: str, producers: dict, consts: dict) -> np.ndarray | None:
    """A constant tensor's float value: a DequantizeLinear of an initializer, or the
    initializer itself; None for an activation."""
    if name in consts:
        return consts[name].astype(np.float32)
    node = producers.get(name)
    if node is None or node.op_type != "DequantizeLinear" or node.input[0] not in consts:
        return None
    q = consts[node.input[0]].astype(np.float32)
    scale = consts[node.input[1]].astype(np.float32)
    zero = consts[node.input[2]].astype(np.float32) if len(node.input) > 2 else np.zeros(1)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q - zero) * scale).astype(np.float32)


def _weighted(node, weight, producers, consts, model) -> Weighted:
    """Conv weights as they are; Gemm's as [out, in]; MatMul's transposed, with the bias of the
    Add that follows it."""
    bias = _dequantized(node.input[2], producers, consts) if len(node.input) > 2 else None
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        weight = weight if trans_b else weight.T
    elif node.op_type == "MatMul":
        weight = weight.T
        bias = _following_bias(node.output[0], model, producers, consts)
    return Weighted(node.name, np.ascontiguousarray(weight), bias)


def _following_bias(tensor: str, model, producers, consts) -> np.ndarray | None:
    readers = [n for n in model.graph.node if tensor in n.input]
    if len(readers) == 1 and readers[0].op_type == "Add":
        other = [i for i in readers[0].input if i != tensor]
        if other:
            return _dequantized(other[0], producers, consts)
    return None


def run_float(model: onnx.ModelProto, graph: QdqGraph, feeds: dict[str, np.ndarray]) -> None:
    """graph.values: every quantized activation computed with the activation Q/DQ pairs
    as clips (weights stay as quantized), in onnxruntime with no graph optimization."""
    clipped = _clip_activation_qdq(model, graph)
    inputs = {i.name for i in clipped.graph.input}
    known = {o.name for o in clipped.graph.output}
    for name in graph.qparams:
        if name not in known and name not in inputs:
            clipped.graph.output.append(onnx.ValueInfoProto(name=name))
    session = exact_session(clipped.SerializeToString())
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(names, feeds), strict=True))
    graph.values = {k: v for k, v in values.items() if k in graph.qparams}
    graph.values.update({k: v for k, v in feeds.items() if k in graph.qparams})


def _clip_activation_qdq(model: onnx.ModelProto, graph: QdqGraph) -> onnx.ModelProto:
    """A copy whose activation Q→DQ pairs are Clips to their representable range: the ranges
    still clip (a ReLU the quantizer folded into a range stays applied), nothing rounds."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    q_in = {n.output[0]: n.input[0] for n in copy.graph.node if n.op_type == "QuantizeLinear"}
    nodes = []
    for node in copy.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in graph.qparams:
            continue
        source = q_in.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if source in graph.qparams:
            scale, zero = graph.qparams[source]
            bounds = [f"{node.output[0]}/lo", f"{node.output[0]}/hi"]
            for name, q in zip(bounds, (-128, 127), strict=True):
                value = np.array((q - zero) * scale, np.float32)
                copy.graph.initializer.append(numpy_helper.from_array(value, name))
            node = onnx.helper.make_node("Clip", [source, *bounds], [node.output[0]])
        nodes.append(node)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy
