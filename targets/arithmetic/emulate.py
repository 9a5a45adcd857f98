"""Run a Q/DQ model in a chosen int8 arithmetic with onnxruntime, on any CPU.

The exact arithmetic is the Q/DQ graph run unoptimized (DequantizeLinear then a float op).
The AVX2 pair arithmetic is that graph plus, per int8 layer, a correction over only the weight
pairs whose int16 sum can saturate: a small Conv/MatMul reads the two u8 taps of each such pair,
Clip to int16 gives the saturated sum, and the difference, scaled by s_x*s_w, is added to the
layer's output. Written by hand: no library models MLAS's VPMADDUBSW pair sums.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from targets.arithmetic.layers import (
    INT16_MAX,
    INT16_MIN,
    QLayer,
    find_qlayers,
    kernel_pairs,
    pairs_at_risk,
)
from targets.arithmetic.profiles import Int8Arithmetic


def exact_session(model: bytes | str | Path, threads: int = 1) -> ort.InferenceSession:
    """onnxruntime with graph optimizations off: every Q/DQ op computed exactly as written."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def emulation_model(qdq: onnx.ModelProto, arithmetic: Int8Arithmetic) -> onnx.ModelProto:
    """A model that, run by exact_session, computes qdq in `arithmetic` (exact: qdq itself)."""
    if not arithmetic.pair_saturation:
        return qdq
    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    after: dict[str, list[onnx.NodeProto]] = {}
    for index, layer in enumerate(find_qlayers(model)):
        pairs = kernel_pairs(layer)
        risk = pairs_at_risk(layer, pairs)
        if risk.any():
            exact, nodes = _add_correction(model, layer, pairs, np.argwhere(risk), f"sat{index}")
            after[exact] = nodes
    _insert_after(model, after)
    return model


def _add_correction(
    model: onnx.ModelProto, layer: QLayer, pairs: np.ndarray, risky: np.ndarray, tag: str
) -> tuple[str, list[onnx.NodeProto]]:
    """Add (saturated - exact) pair sums of the risky [channel, pair]s to the layer's output."""
    rows = layer.rows
    channels = risky[:, 0]
    taps = pairs[risky[:, 1]]  # [P, 2] row indices, -1 for padding
    values = np.where(taps >= 0, rows[channels[:, None], np.maximum(taps, 0)], 0)
    out = layer.node.output[0]
    exact = f"{out}_{tag}_exact"
    layer.node.output[0] = exact
    name = f"{tag}_{layer.node.name or layer.node.op_type}"
    nodes, inits = _unsigned_input(layer, name)
    gather = _GATHERS[layer.node.op_type]
    sums, more_nodes, more_inits = gather(layer, f"{name}_a", channels, taps, values, name)
    nodes += more_nodes
    inits += more_inits
    scale = (layer.x_scale * layer.w_scale[channels]).astype(np.float32)
    if layer.node.op_type == "Gemm":
        scale = scale * np.float32(
            next((a.f for a in layer.node.attribute if a.name == "alpha"), 1.0)
        )
    spread = np.zeros((len(channels), rows.shape[0]), np.float32)
    spread[np.arange(len(channels)), channels] = scale
    inits += [
        _init(f"{name}_lo", np.float32(INT16_MIN)),
        _init(f"{name}_hi", np.float32(INT16_MAX)),
    ]
    nodes += [
        helper.make_node("Clip", [sums, f"{name}_lo", f"{name}_hi"], [f"{name}_sat"]),
        helper.make_node("Sub", [f"{name}_sat", sums], [f"{name}_delta"]),
    ]
    scatter = _SCATTERS[layer.node.op_type]
    fix, scatter_nodes, scatter_inits = scatter(layer, f"{name}_delta", spread, name)
    nodes += scatter_nodes + [helper.make_node("Add", [exact, fix], [out], name=f"{name}_add")]
    inits += scatter_inits
    model.graph.initializer.extend(inits)
    return exact, nodes


def _unsigned_input(layer: QLayer, name: str) -> tuple[list, list]:
    """Nodes making `{name}_a`: the layer's 8-bit input as the unsigned values the kernel reads."""
    nodes = [
        helper.make_node("Cast", [layer.activation], [f"{name}_a0"], to=onnx.TensorProto.FLOAT)
    ]
    if not layer.x_signed:
        return nodes + [helper.make_node("Identity", [f"{name}_a0"], [f"{name}_a"])], []
    shift = _init(f"{name}_shift", np.float32(128))
    return nodes + [helper.make_node("Add", [f"{name}_a0", shift.name], [f"{name}_a"])], [shift]


def _gather_conv(layer: QLayer, a: str, channels, taps, values, name: str):
    """Conv over the zero-point-padded input with one 2-tap kernel per risky pair: [N,P,H,W]."""
    node = layer.node
    out_ch, cin_g, *kernel = layer.weight.shape
    per_group = out_ch // layer.groups
    kernel_w = np.zeros((len(channels), cin_g * layer.groups, *kernel), np.float32)
    flat = kernel_w.reshape(len(channels), cin_g * layer.groups, -1)
    taps_per = int(np.prod(kernel))
    for side in range(2):
        ok = taps[:, side] >= 0
        index = np.maximum(taps[:, side], 0)
        cin = (channels // per_group) * cin_g + index // taps_per
        flat[np.arange(len(channels))[ok], cin[ok], (index % taps_per)[ok]] = values[ok, side]
    pads = _conv_pads(node, len(kernel))
    attrs = {
        a.name: helper.get_attribute_value(a)
        for a in node.attribute
        if a.name in ("strides", "dilations", "kernel_shape")
    }
    inits = [
        _init(f"{name}_pairs", kernel_w),
        _init(
            f"{name}_pads",
            np.array([0, 0, *pads[: len(kernel)], 0, 0, *pads[len(kernel) :]], np.int64),
        ),
        _init(f"{name}_zero", np.float32(layer.u8_zero)),
    ]
    nodes = [
        helper.make_node("Pad", [a, f"{name}_pads", f"{name}_zero"], [f"{name}_padded"]),
        helper.make_node("Conv", [f"{name}_padded", f"{name}_pairs"], [f"{name}_sums"], **attrs),
    ]
    return f"{name}_sums", nodes, inits


def _conv_pads(node: onnx.NodeProto, dims: int) -> list[int]:
    auto = next((a.s.decode() for a in node.attribute if a.name == "auto_pad"), "NOTSET")
    if auto not in ("NOTSET", "VALID"):
        raise ValueError(f"Conv {node.name}: auto_pad {auto} is not emulated; use explicit pads")
    return list(next((a.ints for a in node.attribute if a.name == "pads"), [0] * 2 * dims))


def _gather_matmul(layer: QLayer, a: str, channels, taps, values, name: str):
    """MatMul of the input with a [K, P] matrix holding each risky pair's two weights."""
    pick = np.zeros((layer.rows.shape[1], len(channels)), np.float32)
    for side in range(2):
        ok = taps[:, side] >= 0
        pick[taps[ok, side], np.arange(len(channels))[ok]] = values[ok, side]
    node = helper.make_node("MatMul", [a, f"{name}_pairs"], [f"{name}_sums"])
    return f"{name}_sums", [node], [_init(f"{name}_pairs", pick)]


def _scatter_conv(layer: QLayer, delta: str, spread: np.ndarray, name: str):
    """1x1 Conv from the P pair deltas to the output channels, times s_x*s_w."""
    ones = [1] * (layer.weight.ndim - 2)
    kernel = np.ascontiguousarray(spread.T).reshape(spread.shape[1], spread.shape[0], *ones)
    node = helper.make_node("Conv", [delta, f"{name}_spread"], [f"{name}_fix"])
    return f"{name}_fix", [node], [_init(f"{name}_spread", kernel)]


def _scatter_matmul(layer: QLayer, delta: str, spread: np.ndarray, name: str):
    """MatMul from the P pair deltas to the output features, times s_x*s_w."""
    node = helper.make_node("MatMul", [delta, f"{name}_spread"], [f"{name}_fix"])
    return f"{name}_fix", [node], [_init(f"{name}_spread", spread)]


_GATHERS = {"Conv": _gather_conv, "MatMul": _gather_matmul, "Gemm": _gather_matmul}
_SCATTERS = {"Conv": _scatter_conv, "MatMul": _scatter_matmul, "Gemm": _scatter_matmul}


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _insert_after(model: onnx.ModelProto, after: dict[str, list[onnx.NodeProto]]) -> None:
    """Insert each node list right after the node making its key, keeping the graph sorted."""
    nodes = []
    for node in model.graph.node:
        nodes.append(node)
        nodes += after.get(node.output[0] if node.output else "", [])
    copied = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
    del model.graph.node[:]
    model.graph.node.extend(copied)
