"""Cross-layer equalization (Nagel et al., 2019) of Conv pairs in the fp32 ONNX graph.

Conv A's output channel i is divided by s_i and Conv B's input channel i multiplied by s_i,
with s_i = sqrt(rA_i / rB_i) (r: the channel's weight |max|), so both ranges become
sqrt(rA_i · rB_i) and A's output channels, which int8 shares one activation scale across,
come closer in range. Depthwise convs take part on either side (a group conv scales its
group's rows). The function is unchanged only when nothing or a positive-homogeneous
activation (Relu, LeakyRelu, PRelu: f(x/s) = f(x)/s for s > 0) sits between A and B, so only
those pairs are equalized. ReLU6/Clip and HardSwish pairs are left alone: a clip at 6/s_i per
channel has no form onnxruntime fuses into QLinearConv, and AIMET's way (ReLU6 → ReLU)
changes the model. Chains (A→B→C) are equalized pair by pair until the scales settle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

# per-channel ops with f(x/s) = f(x)/s for s > 0, walked through between the two Convs
HOMOGENEOUS = ("Relu", "LeakyRelu", "PRelu", "MaxPool", "AveragePool")
ROUNDS = 20
SETTLED = 1e-3  # stop when no scale moves by more than this (in log)


@dataclass
class ConvPair:
    """Two Convs where A's output channels are B's input channels, through `between`."""

    first: onnx.NodeProto
    second: onnx.NodeProto
    between: str  # the ops between them, "+"-joined, or "" for none


def _uses(graph: onnx.GraphProto) -> dict[str, int]:
    counts: dict[str, int] = {o.name: 1 for o in graph.output}
    for node in graph.node:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _group(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def find_pairs(model: onnx.ModelProto) -> list[ConvPair]:
    """Conv pairs whose joining tensors have no other reader and whose weights are constants."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    uses = _uses(graph)

    def private(name: str) -> bool:
        return uses.get(name, 0) == 1

    def own_weights(conv: onnx.NodeProto) -> bool:
        return all(i in inits and private(i) for i in conv.input[1:] if i)

    pairs = []
    for second in graph.node:
        if second.op_type != "Conv" or not own_weights(second) or not private(second.input[0]):
            continue
        node, between = producer.get(second.input[0]), []
        while node is not None and node.op_type in HOMOGENEOUS:
            between.append(node.op_type)
            extra = [i for i in node.input[1:] if i and i not in inits]  # PRelu slope
            private_in = private(node.input[0]) and len(node.output) == 1  # MaxPool indices
            node = None if extra or not private_in else producer.get(node.input[0])
        if node is not None and node.op_type == "Conv" and own_weights(node):
            pairs.append(ConvPair(node, second, "+".join(reversed(between))))
    return pairs


def _ranges_out(weight: np.ndarray) -> np.ndarray:
    return np.abs(weight).reshape(weight.shape[0], -1).max(1)


def _ranges_in(weight: np.ndarray, groups: int) -> np.ndarray:
    """|max| of the weights reading each input channel (a group conv's rows of that group)."""
    out, per_group = weight.shape[0], weight.shape[1]
    grouped = np.abs(weight).reshape(groups, out // groups, per_group, -1)
    return grouped.max(axis=(1, 3)).reshape(-1)


def _scale_in(weight: np.ndarray, groups: int, s: np.ndarray) -> np.ndarray:
    out, per_group = weight.shape[0], weight.shape[1]
    grouped = weight.reshape(groups, out // groups, per_group, -1)
    return (grouped * s.reshape(groups, 1, per_group, 1)).reshape(weight.shape)


def _equalize_pair(pair: ConvPair, values: dict[str, np.ndarray]) -> float:
    """Rescale one pair in `values` (name -> float64 array); returns the largest |log s|."""
    w1, w2 = values[pair.first.input[1]], values[pair.second.input[1]]
    r1, r2 = _ranges_out(w1), _ranges_in(w2, _group(pair.second))
    if r1.shape != r2.shape:
        return 0.0
    s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.maximum(r2, 1e-300)), 1.0)
    values[pair.first.input[1]] = w1 / s.reshape(-1, *([1] * (w1.ndim - 1)))
    if len(pair.first.input) > 2 and pair.first.input[2]:
        values[pair.first.input[2]] = values[pair.first.input[2]] / s
    values[pair.second.input[1]] = _scale_in(w2, _group(pair.second), s)
    return float(np.abs(np.log(s)).max())


def equalize_convs(model: onnx.ModelProto) -> dict:
    """Equalize every eligible Conv pair of model in place; returns what was done."""
    pairs = find_pairs(model)
    inits = {i.name: i for i in model.graph.initializer}
    names = {n for p in pairs for c in (p.first, p.second) for n in c.input[1:] if n}
    values = {n: numpy_helper.to_array(inits[n]).astype(np.float64) for n in names}
    rounds = 0
    while pairs and rounds < ROUNDS:
        rounds += 1
        if max(_equalize_pair(p, values) for p in pairs) < SETTLED:
            break
    for name, value in values.items():
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
    return {
        "pairs": len(pairs),
        "through": sorted({p.between or "none" for p in pairs}),
        "rounds": rounds,
    }
