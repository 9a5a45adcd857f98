"""Run a Q/DQ model in a chosen int8 arithmetic with onnxruntime, on any CPU.

The exact arithmetic is the Q/DQ graph run unoptimized (DequantizeLinear then a float op).
The AVX2 pair arithmetic is that graph plus, per int8 layer that onnxruntime fuses, a
correction over only the weight pairs whose int16 sum can saturate: the pair's two u8 input
taps are gathered (im2col by Slice for a Conv, padded with the zero point as MLAS pads),
a1*w1 + a2*w2 is clipped to int16, and the difference, summed per output channel and scaled
by s_x*s_w, is added to the layer's float output. Written by hand: no library models MLAS's
VPMADDUBSW pair sums. Pairing and fusion rules were measured under qemu -cpu Haswell
(docs/int8-arithmetic.md).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from foundation.errors import UnsupportedOp
from targets.arithmetic.layers import (
    INT16_MAX,
    INT16_MIN,
    QLayer,
    conv_pads,
    find_qlayers,
    kernel_pairs,
    pads_need_input_size,
    pairs_at_risk,
    runs_int8,
    transposed_input,
)
from targets.arithmetic.profiles import Int8Arithmetic

INT64_MAX = np.iinfo(np.int64).max


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
    shapes: dict[str, tuple] | None = None  # inferred only for a SAME-padded Conv at risk
    for index, layer in enumerate(find_qlayers(model)):
        if not runs_int8(model, layer):
            continue
        table = risky_pair_table(layer)
        if table is not None:
            if pads_need_input_size(layer.node):
                shapes = _input_shapes(model) if shapes is None else shapes
                table["shape"] = shapes.get(layer.activation)
            exact, nodes = _add_correction(model, layer, table, f"sat{index}")
            after[exact] = nodes
    _insert_after(model, after)
    return model


def _input_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    """Tensor name -> dims as shape inference knows them (an int, or None where unknown)."""
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001 - a graph inference cannot type is emulated without it
        return {}
    found = {}
    for info in [*graph.value_info, *graph.input]:
        dims = info.type.tensor_type.shape.dim
        found[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return found


def risky_pair_table(layer: QLayer) -> dict[str, np.ndarray] | None:
    """[output channel, slot] tables of the pairs that can saturate (row indices, weights),
    padded per channel to the longest list with a zero-weight pair; None when none can."""
    pairs = kernel_pairs(layer)
    risk = pairs_at_risk(layer, pairs)
    if not risk.any():
        return None
    rows = np.concatenate([layer.rows, np.zeros((layer.rows.shape[0], 1), np.int32)], axis=1)
    slots = int(risk.sum(1).max())
    index = np.full((rows.shape[0], slots, 2), -1, np.int64)
    for channel in np.flatnonzero(risk.any(1)):
        chosen = pairs[risk[channel]]
        index[channel, : len(chosen)] = chosen
    weight = np.take_along_axis(rows[:, None, :], index.reshape(rows.shape[0], 1, -1), axis=2)
    return {"index": np.maximum(index, 0), "weight": weight.reshape(index.shape)}


def _add_correction(
    model: onnx.ModelProto, layer: QLayer, table: dict, tag: str
) -> tuple[str, list[onnx.NodeProto]]:
    """Nodes adding (saturated - exact) risky pair sums to the layer's output, renamed aside."""
    out = layer.node.output[0]
    exact = f"{out}_{tag}_exact"
    layer.node.output[0] = exact
    name = f"{tag}_{layer.node.name or layer.node.op_type}"
    builder = _BUILDERS[layer.node.op_type]
    nodes, inits = _unsigned_input(layer, name)
    more_nodes, more_inits = builder(layer, f"{name}_a", table, name, exact, out)
    model.graph.initializer.extend(inits + more_inits)
    return exact, nodes + more_nodes


def _unsigned_input(layer: QLayer, name: str) -> tuple[list, list]:
    """Nodes making `{name}_a`: the 8-bit input as the unsigned values the kernel reads."""
    cast = helper.make_node("Cast", [layer.activation], [f"{name}_a0"], to=onnx.TensorProto.FLOAT)
    if not layer.x_signed:
        return [cast, helper.make_node("Identity", [f"{name}_a0"], [f"{name}_a"])], []
    shift = _init(f"{name}_shift", np.float32(128))
    return [cast, helper.make_node("Add", [f"{name}_a0", shift.name], [f"{name}_a"])], [shift]


def _pair_delta(cols: str, table: dict, name: str, ones: int) -> tuple[list, list]:
    """Nodes making `{name}_delta` [slots of every channel, ...] = clip16(t) - t per pair,
    t = a1*w1 + a2*w2, from `cols` with K first (Gather along axis 0 copies whole rows)."""
    index, weight = table["index"], table["weight"].astype(np.float32)
    nodes, inits = [], []
    for side in range(2):
        inits += [
            _init(f"{name}_i{side}", index[..., side].reshape(-1)),
            _init(f"{name}_w{side}", weight[..., side].reshape(-1, *[1] * ones)),
        ]
        nodes += [
            helper.make_node("Gather", [cols, f"{name}_i{side}"], [f"{name}_g{side}"], axis=0),
            helper.make_node("Mul", [f"{name}_g{side}", f"{name}_w{side}"], [f"{name}_p{side}"]),
        ]
    inits += [
        _init(f"{name}_lo", np.float32(INT16_MIN)),
        _init(f"{name}_hi", np.float32(INT16_MAX)),
    ]
    nodes += [
        helper.make_node("Add", [f"{name}_p0", f"{name}_p1"], [f"{name}_t"]),
        helper.make_node("Clip", [f"{name}_t", f"{name}_lo", f"{name}_hi"], [f"{name}_sat"]),
        helper.make_node("Sub", [f"{name}_sat", f"{name}_t"], [f"{name}_delta"]),
    ]
    return nodes, inits


def _scales(layer: QLayer) -> np.ndarray:
    """s_x * s_w per output channel (times Gemm's alpha): one int32 unit in float."""
    alpha = next((a.f for a in layer.node.attribute if a.name == "alpha"), 1.0)
    return (layer.x_scale * layer.w_scale * alpha).astype(np.float32)


def _build_conv(layer: QLayer, a: str, table: dict, name: str, exact: str, out: str):
    """im2col of the zero-point-padded input with K first ([taps*C, N, *out], tap-major and
    channels fastest, as MLAS reads K) by one Slice per tap; then the slot sums."""
    node = layer.node
    out_ch, cin_g, *kernel = layer.weight.shape
    dims, taps = len(kernel), int(np.prod(kernel))
    cin = cin_g * layer.groups
    strides = _ints(node, "strides", [1] * dims)
    dilations = _ints(node, "dilations", [1] * dims)
    pads = _conv_pads(node, tuple(kernel), table.get("shape"))
    group_of = np.arange(out_ch) // (out_ch // layer.groups)
    row = table["index"]  # row index = c * taps + t within the channel's group
    cols = (row % taps) * cin + group_of[:, None, None] * cin_g + row // taps
    inits = [
        _init(f"{name}_pads", np.array([0, 0, *pads[:dims], 0, 0, *pads[dims:]], np.int64)),
        _init(f"{name}_zero", np.float32(layer.u8_zero)),
        _init(f"{name}_axes", np.arange(2, 2 + dims, dtype=np.int64)),
        _init(f"{name}_steps", np.array(strides, np.int64)),
    ]
    swap = [1, 0, *range(2, 2 + dims)]  # N and C trade places, both ways
    nodes = [
        helper.make_node("Pad", [a, f"{name}_pads", f"{name}_zero"], [f"{name}_padded"]),
        helper.make_node("Transpose", [f"{name}_padded"], [f"{name}_cn"], perm=swap),
    ]
    for t, offsets in enumerate(itertools.product(*(range(k) for k in kernel))):
        starts = [o * d for o, d in zip(offsets, dilations, strict=True)]
        ends = [
            -(k - 1 - o) * d or INT64_MAX
            for k, o, d in zip(kernel, offsets, dilations, strict=True)
        ]
        inits += [
            _init(f"{name}_s{t}", np.array(starts, np.int64)),
            _init(f"{name}_e{t}", np.array(ends, np.int64)),
        ]
        slice_in = [f"{name}_cn", f"{name}_s{t}", f"{name}_e{t}", f"{name}_axes", f"{name}_steps"]
        nodes.append(helper.make_node("Slice", slice_in, [f"{name}_tap{t}"]))
    taps_out = [f"{name}_tap{t}" for t in range(taps)]
    nodes.append(helper.make_node("Concat", taps_out, [f"{name}_cols"], axis=0))
    more_nodes, more_inits = _slot_sums(
        layer, f"{name}_cols", {**table, "index": cols}, name, dims + 1
    )
    nodes += more_nodes + [
        helper.make_node("Transpose", [f"{name}_fix"], [f"{name}_nc"], perm=swap),
        helper.make_node("Add", [exact, f"{name}_nc"], [out]),
    ]
    return nodes, inits + more_inits


def _build_matmul(layer: QLayer, a: str, table: dict, name: str, exact: str, out: str):
    """The input as [K, rows] (K first), the slot sums, back to [..., N] and added."""
    k, out_ch = layer.rows.shape[1], layer.rows.shape[0]
    inits = [
        _init(f"{name}_flat", np.array([-1, k], np.int64)),
        _init(f"{name}_n", np.array([out_ch], np.int64)),
        _init(f"{name}_lead", np.array([0], np.int64)),
        _init(f"{name}_last", np.array([-1], np.int64)),
    ]
    if transposed_input(layer.node):  # Gemm transA: the input is [K, M] already
        nodes = [helper.make_node("Identity", [a], [f"{name}_cols"])]
        more_nodes, more_inits = _slot_sums(layer, f"{name}_cols", table, name, 1)
        nodes += more_nodes + [
            helper.make_node("Transpose", [f"{name}_fix"], [f"{name}_fixed"], perm=[1, 0]),
            helper.make_node("Add", [exact, f"{name}_fixed"], [out]),
        ]
        return nodes, more_inits
    nodes = [
        helper.make_node("Reshape", [a, f"{name}_flat"], [f"{name}_rows"]),
        helper.make_node("Transpose", [f"{name}_rows"], [f"{name}_cols"], perm=[1, 0]),
    ]
    more_nodes, more_inits = _slot_sums(layer, f"{name}_cols", table, name, 1)
    nodes += more_nodes + [
        helper.make_node("Transpose", [f"{name}_fix"], [f"{name}_fixed"], perm=[1, 0]),
        helper.make_node("Shape", [a], [f"{name}_ashape"]),
        helper.make_node(
            "Slice", [f"{name}_ashape", f"{name}_lead", f"{name}_last"], [f"{name}_ahead"]
        ),
        helper.make_node("Concat", [f"{name}_ahead", f"{name}_n"], [f"{name}_oshape"], axis=0),
        helper.make_node("Reshape", [f"{name}_fixed", f"{name}_oshape"], [f"{name}_back"]),
        helper.make_node("Add", [exact, f"{name}_back"], [out]),
    ]
    return nodes, inits + more_inits


def _slot_sums(layer: QLayer, cols: str, table: dict, name: str, ones: int) -> tuple[list, list]:
    """`{name}_fix` [N_out, ...]: each output channel's pair deltas summed, times s_x*s_w."""
    out_ch, slots = table["index"].shape[:2]
    nodes, inits = _pair_delta(cols, table, name, ones)
    inits += [
        _init(f"{name}_one", np.array([1], np.int64)),
        _init(f"{name}_end", np.array([INT64_MAX], np.int64)),
        _init(f"{name}_head", np.array([out_ch, slots], np.int64)),
        _init(f"{name}_axis", np.array([1], np.int64)),
        _init(f"{name}_scale", _scales(layer).reshape(-1, *[1] * ones)),
    ]
    nodes += [
        helper.make_node("Shape", [f"{name}_delta"], [f"{name}_shape"]),
        helper.make_node(
            "Slice", [f"{name}_shape", f"{name}_one", f"{name}_end"], [f"{name}_rest"]
        ),
        helper.make_node("Concat", [f"{name}_head", f"{name}_rest"], [f"{name}_to"], axis=0),
        helper.make_node("Reshape", [f"{name}_delta", f"{name}_to"], [f"{name}_slots"]),
        helper.make_node(
            "ReduceSum", [f"{name}_slots", f"{name}_axis"], [f"{name}_sum"], keepdims=0
        ),
        helper.make_node("Mul", [f"{name}_sum", f"{name}_scale"], [f"{name}_fix"]),
    ]
    return nodes, inits


_BUILDERS = {"Conv": _build_conv, "MatMul": _build_matmul, "Gemm": _build_matmul}


def _ints(node: onnx.NodeProto, name: str, default: list[int]) -> list[int]:
    return list(next((a.ints for a in node.attribute if a.name == name), default))


def _conv_pads(node: onnx.NodeProto, kernel: tuple[int, ...], shape: tuple | None) -> list[int]:
    """The Conv's explicit pads, auto_pad SAME_* resolved from its input's inferred size."""
    pads = conv_pads(node, kernel, tuple(shape or ())[2:])
    if pads is None:
        raise UnsupportedOp(
            f"Conv '{node.name}' pads with auto_pad SAME_* on an input whose spatial size "
            "shape inference cannot tell, so the AVX2 emulation cannot place its padding; "
            "export the model with explicit pads or fixed input sizes to verify it in that "
            "arithmetic."
        )
    return pads


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
