"""Rules that keep tensors int8 cannot represent out of Q/DQ, and say which and why.

One int8 scale per tensor spans its whole calibrated range. A mask constant (-3.4e38) makes
that scale 1e36, so every attention score rounds to zero; a Concat of box coordinates (~300)
and sigmoid scores (0..1) gives the scores a step of 1.2, so they round to 0 or 1. Such
tensors stay float; everything else keeps its Q/DQ, so int8 kernels still run where they can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from calibration.activations import TensorStats
from targets.base import QuantScheme

MASK_MAGNITUDE = 1e4  # |x| at or above this is a mask or sentinel, not a value to quantize
JOIN_RATIO = 64.0  # branches joined by Concat/Add whose ranges differ more than this stay float
JOIN_OPS = ("Concat", "Add", "Sum")
SHAPE_SOURCES = ("Shape", "Size", "Range", "ConstantOfShape", "NonZero")
PROBABILITY_OPS = ("Sigmoid", "Softmax", "HardSigmoid", "LogSoftmax")
# Ops that move data without changing it: the quantizer gives their output their input's scale,
# so a tensor kept float keeps its copies float too.
LAYOUT_OPS = ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Expand")


@dataclass(frozen=True)
class KeptFloat:
    """One tensor a rule keeps in float, with the rule's name and a plain-words reason."""

    tensor: str  # a tensor name, or a node name when kind is "node"
    rule: str
    why: str
    kind: str = "tensor"

    def to_dict(self) -> dict:
        return {self.kind: self.tensor, "rule": self.rule, "why": self.why}


@dataclass(frozen=True)
class GraphView:
    """What the rules read: producers, consumers, constants and calibration statistics."""

    graph: onnx.GraphProto
    stats: dict[str, TensorStats]
    producer: dict[str, onnx.NodeProto]
    consumers: dict[str, list[onnx.NodeProto]]
    constants: dict[str, np.ndarray]


def view_graph(model: onnx.ModelProto, stats: dict[str, TensorStats]) -> GraphView:
    graph = model.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producer = {o: n for n in graph.node for o in n.output}
    return GraphView(graph, stats, producer, consumers, constants)


def _absmax(view: GraphView, name: str) -> float | None:
    if name in view.stats:
        return view.stats[name].absmax
    value = view.constants.get(name)
    if value is None or value.dtype.kind != "f" or value.size == 0:
        return None
    return float(np.abs(value.astype(np.float64)).max())


def rule_masks(view: GraphView, scheme: QuantScheme) -> list[KeptFloat]:
    """Tensors (activations or constants) with |x| >= 1e4 or ±inf: masks and sentinels."""
    names = list(view.stats) + [c for c in view.constants if c in view.consumers]
    kept = []
    for name in dict.fromkeys(names):
        top = _absmax(view, name)
        if top is not None and not top < MASK_MAGNITUDE:
            kept.append(KeptFloat(name, "mask-constant", f"|x| reaches {top:.3g} (mask/sentinel)"))
    return kept


def rule_joins(view: GraphView, scheme: QuantScheme) -> list[KeptFloat]:
    """Concat/Add joining branches whose ranges differ > 64x share one scale badly: keep float."""
    kept = []
    for node in view.graph.node:
        if node.op_type not in JOIN_OPS:
            continue
        tops = {i: _absmax(view, i) for i in node.input if i and i not in view.constants}
        tops = {i: t for i, t in tops.items() if t is not None and 0 < t < MASK_MAGNITUDE}
        if len(tops) < 2 or max(tops.values()) <= JOIN_RATIO * min(tops.values()):
            continue
        small = min(tops, key=tops.get)
        source = view.producer.get(small)
        what = f"{source.op_type} output " if source and source.op_type in PROBABILITY_OPS else ""
        why = (
            f"{node.op_type} '{node.name}' joins {what}'{small}' (|x| <= {tops[small]:.3g}) "
            f"with |x| up to {max(tops.values()):.3g}: one int8 scale would erase the smaller"
        )
        for name in [*tops, *node.output]:
            kept.append(KeptFloat(name, f"{node.op_type.lower()}-range-mismatch", why))
    return kept


def rule_shapes(view: GraphView, scheme: QuantScheme) -> list[KeptFloat]:
    """Float tensors computed only from shapes/indices (Shape, Range, ...): never quantize."""
    derived: set[str] = set()
    for node in view.graph.node:
        data = [i for i in node.input if i and i not in view.constants]
        if node.op_type in SHAPE_SOURCES or (data and all(i in derived for i in data)):
            derived.update(node.output)
    return [
        KeptFloat(n, "shape-or-index", "computed from tensor shapes/indices")
        for n in view.stats
        if n in derived
    ]


def rule_float_islands(view: GraphView, scheme: QuantScheme) -> list[KeptFloat]:
    """Ops the target has no int8 kernel for (scheme.float_ops) run in float, unquantized."""
    return [
        KeptFloat(n.name, "float-island", f"{n.op_type}: no int8 kernel on this target", "node")
        for n in view.graph.node
        if n.op_type in scheme.float_ops
    ]


RULES: dict[str, Callable[[GraphView, QuantScheme], list[KeptFloat]]] = {
    "mask-constant": rule_masks,
    "range-mismatch": rule_joins,
    "shape-or-index": rule_shapes,
    "float-island": rule_float_islands,
}


def tensors_kept_float(
    model: onnx.ModelProto, stats: dict[str, TensorStats], scheme: QuantScheme
) -> list[KeptFloat]:
    """Every tensor some rule keeps in float, first rule first, one entry per tensor."""
    view = view_graph(model, stats)
    found: dict[str, KeptFloat] = {}
    for rule in RULES.values():
        for kept in rule(view, scheme):
            found.setdefault(kept.tensor, kept)
    for node in view.graph.node:  # sorted graph: one forward sweep reaches every copy
        source = found.get(node.input[0]) if node.input else None
        if node.op_type in LAYOUT_OPS and source is not None and source.kind == "tensor":
            for name in node.output:
                found.setdefault(name, KeptFloat(name, source.rule, f"copy of {source.tensor}"))
    return list(found.values())


def nodes_reading_constants(model: onnx.ModelProto, names: set[str]) -> list[str]:
    """Nodes fed by one of the named constants: excluded so the quantizer never scales them."""
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if any(i in names and i in inits for i in n.input)]
