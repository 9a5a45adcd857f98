"""SmoothQuant-style scale migration (Xiao et al., 2023) for MatMul/Gemm inputs, on fp32 ONNX.

A few activation channels of a transformer's MatMul input are often far larger than the rest;
with one int8 scale per tensor they crush the others. Per input channel j,
s_j = max|X_j|^α / max|W_j|^(1-α): X is divided by s (its channels even out) and W's row j
multiplied by s_j (weights are quantized per output channel, so they absorb it). The 1/s is
folded into X's producer where that is exact (LayerNormalization's scale and bias, a MatMul or
Gemm with constant weights, its bias Add, through Relu-like activations); otherwise a Mul is
inserted, which stays float so that X reaches it unrounded. Only inputs whose largest channel
exceeds OUTLIER_RATIO × the median channel are smoothed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from compressor.passes.placement import _drop_unused

OUTLIER_RATIO = 8.0
SMOOTH_MUL = "smooth_mul/"  # name prefix of inserted Muls, which quantization leaves float
THROUGH = ("Relu", "LeakyRelu", "PRelu")


@dataclass
class SmoothInput:
    """One activation X and the MatMul/Gemm nodes reading it with constant weights."""

    tensor: str
    readers: list[onnx.NodeProto] = field(default_factory=list)


def _attr(node: onnx.NodeProto, name: str, default: int = 0) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _weight_rows(node: onnx.NodeProto, w: np.ndarray) -> np.ndarray:
    """The weight as [input channels, outputs] (Gemm's transB undone)."""
    return w.T if node.op_type == "Gemm" and _attr(node, "transB") else w


def smoothable_inputs(model: onnx.ModelProto) -> list[SmoothInput]:
    """Activations read by MatMul/Gemm with constant 2-D weights (Gemm without transA)."""
    inits = {i.name: i for i in model.graph.initializer}
    found: dict[str, SmoothInput] = {}
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or node.input[0] in inits:
            continue
        weight = inits.get(node.input[1])
        if weight is None or len(weight.dims) != 2 or _attr(node, "transA"):
            continue
        found.setdefault(node.input[0], SmoothInput(node.input[0])).readers.append(node)
    return list(found.values())


def smoothing_scales(
    item: SmoothInput, absmax: np.ndarray, weights: dict[str, np.ndarray], alpha: float
) -> np.ndarray | None:
    """s per input channel, or None when X has no outlier channel (or shapes disagree)."""
    rows = [np.abs(_weight_rows(n, weights[n.input[1]])).max(1) for n in item.readers]
    if any(r.shape != absmax.shape for r in rows):
        return None
    if absmax.max() <= OUTLIER_RATIO * max(float(np.median(absmax)), 1e-30):
        return None
    w = np.max(rows, axis=0)
    ok = (absmax > 0) & (w > 0)
    s = np.power(np.maximum(absmax, 1e-30), alpha) / np.power(np.maximum(w, 1e-30), 1 - alpha)
    return np.clip(np.where(ok, s, 1.0), 1e-5, 1e5)


class GraphEdit:
    """Initializer and node edits on one model, keeping shared constants unshared."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model, self.graph = model, model.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in self.graph.output}
        self.private: set[str] = set()  # constants this edit created (safe to overwrite)

    def value(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name]).astype(np.float64)

    def set_input(self, node: onnx.NodeProto, index: int, value: np.ndarray) -> None:
        """Give node a private copy of its constant input `index` holding value."""
        old = node.input[index]
        name = old if old in self.private else f"{old}/smoothed/{node.name or node.output[0]}"
        tensor = numpy_helper.from_array(value.astype(np.float32), name)
        if name in self.inits:
            self.inits[name].CopyFrom(tensor)
            return
        self.graph.initializer.append(tensor)
        self.inits[name] = self.graph.initializer[-1]
        self.private.add(name)
        node.input[index] = name

    def only_reader(self, tensor: str, node: onnx.NodeProto) -> bool:
        return tensor not in self.outputs and [id(n) for n in self.readers.get(tensor, [])] == [
            id(node)
        ]


def _fold(edit: GraphEdit, tensor: str, inv: np.ndarray, readers: int) -> str | None:
    """Multiply `tensor`'s producer's output channels by inv, exactly; the producer's op type."""
    node = edit.producer.get(tensor)
    if node is None or tensor in edit.outputs or len(edit.readers.get(tensor, [])) != readers:
        return None
    if node.op_type in THROUGH and all(i in edit.inits for i in node.input[1:] if i):
        return _fold(edit, node.input[0], inv, 1)
    if node.op_type == "LayerNormalization" and _attr(node, "axis", -1) == -1:
        return _scale_constants(edit, node, (1, 2), inv)
    if node.op_type == "Add":
        bias = [i for i, name in enumerate(node.input) if name in edit.inits]
        if len(bias) != 1 or edit.value(node.input[bias[0]]).shape != inv.shape:
            return None
        inner = _fold(edit, node.input[1 - bias[0]], inv, 1)
        return inner and _scale_constants(edit, node, (bias[0],), inv) and "Add"
    if node.op_type in ("MatMul", "Gemm") and node.input[1] in edit.inits:
        return _scale_columns(edit, node, inv)
    return None


def _foldable(edit: GraphEdit, item: SmoothInput) -> bool:
    """Whether 1/s folds into X's producer (tried on a copy, so nothing changes)."""
    trial = onnx.ModelProto()
    trial.CopyFrom(edit.model)
    return _fold(GraphEdit(trial), item.tensor, np.ones(_width(edit, item)), len(item.readers))


def _width(edit: GraphEdit, item: SmoothInput) -> int:
    node = item.readers[0]
    w = edit.value(node.input[1])
    return _weight_rows(node, w).shape[0]


def _scale_constants(edit: GraphEdit, node: onnx.NodeProto, at: tuple, inv: np.ndarray) -> str:
    for index in at:
        if index < len(node.input) and node.input[index]:
            edit.set_input(node, index, edit.value(node.input[index]) * inv)
    return node.op_type


def _scale_columns(edit: GraphEdit, node: onnx.NodeProto, inv: np.ndarray) -> str | None:
    w = edit.value(node.input[1])
    transposed = node.op_type == "Gemm" and _attr(node, "transB")
    if w.ndim != 2 or (w.shape[0] if transposed else w.shape[1]) != inv.size:
        return None
    edit.set_input(node, 1, w * (inv[:, None] if transposed else inv[None, :]))
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        edit.set_input(node, 2, edit.value(node.input[2]) * inv)
    return node.op_type


def _insert_mul(edit: GraphEdit, item: SmoothInput, inv: np.ndarray) -> str:
    name = f"{SMOOTH_MUL}{item.tensor}"
    edit.graph.initializer.append(numpy_helper.from_array(inv.astype(np.float32), name + "/inv"))
    edit.graph.node.append(helper.make_node("Mul", [item.tensor, name + "/inv"], [name], name))
    for reader in item.readers:
        reader.input[0] = name
    return "Mul"


def smooth_inputs(
    model: onnx.ModelProto, absmax: dict[str, np.ndarray], alpha: float, insert_mul: bool
) -> dict:
    """Smooth each outlier input in place (absmax: X's |max| per last-axis channel); where
    1/s cannot be folded, insert a float Mul if `insert_mul`, else leave X as it is."""
    edit = GraphEdit(model)
    done: dict[str, str] = {}
    for item in smoothable_inputs(model):
        weights = {n.input[1]: edit.value(n.input[1]) for n in item.readers}
        s = (
            None
            if item.tensor not in absmax
            else smoothing_scales(item, absmax[item.tensor], weights, alpha)
        )
        if s is None or not (insert_mul or _foldable(edit, item)):
            continue
        for node in item.readers:
            rows = s[:, None] if not (node.op_type == "Gemm" and _attr(node, "transB")) else s
            edit.set_input(node, 1, edit.value(node.input[1]) * rows)
        folded = _fold(edit, item.tensor, 1.0 / s, len(item.readers))
        done[item.tensor] = f"into {folded}" if folded else f"by {_insert_mul(edit, item, 1 / s)}"
    _sort_nodes(model)
    _drop_unused(model.graph)
    return done


def _sort_nodes(model: onnx.ModelProto) -> None:
    """Topological order again after appending Muls."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        now = [n for n in pending if all(i in ready for i in n.input)]
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        for node in now:
            ordered.append(node)
            ready.update(node.output)
        if len(rest) == len(pending):
            ordered += rest
            break
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
