"""Lowering rules for Gemm/MatMul with constant weights → FULLY_CONNECTED."""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite import legalize
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import PLAIN
from targets.tflite.weights import bias_tensor, float_source, weight_tensor
from targets.tflite.writer import QuantParams


def lower_gemm(ctx: Lowering, node: Node) -> None:
    """Gemm(A, B, C) with constant B → FULLY_CONNECTED (alpha/beta folded into the constants)."""
    if node.attrs.get("transA", 0):
        node = _transposed_a(ctx, node)
    weight = _constant(ctx, node, 1) * float(node.attrs.get("alpha", 1.0))
    weight = weight if node.attrs.get("transB", 0) else weight.T
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = _constant(ctx, node, 2) * float(node.attrs.get("beta", 1.0))
        if bias.size not in (1, weight.shape[0]):
            raise UnsupportedOp(
                f"Gemm '{node.name}' adds a bias matrix {list(bias.shape)}, not a row; "
                "FULLY_CONNECTED takes one bias per output."
            )
        bias = np.broadcast_to(bias.reshape(-1), (weight.shape[0],))
    _fully_connected(ctx, node, weight, bias)


def _transposed_a(ctx: Lowering, node: Node) -> Node:
    """Gemm with transA=1: A goes through one TRANSPOSE; the node reads that instead."""
    source = ctx.get(node.inputs[0], PLAIN)
    name = f"{node.name}/a_transposed"
    ctx.graph.shapes[name] = tuple(reversed(source.shape))
    out = ctx.new_value(name, ctx.graph.shapes[name], PLAIN, source.dtype, source.quant)
    ctx.emit("TRANSPOSE", [source.tensor, ctx.shape_const(f"{name}/perm", [1, 0])], [out])
    ctx.values[name] = out
    attrs = {k: v for k, v in node.attrs.items() if k != "transA"}
    return Node(node.op_type, node.name, [name, *node.inputs[1:]], node.outputs, attrs)


def lower_matmul(ctx: Lowering, node: Node) -> None:
    """MatMul(A, B): constant 2-D B → FULLY_CONNECTED (keep_num_dims for rank > 2), else
    BATCH_MATMUL, with a transpose of the last two axes folded into adj_x / adj_y."""
    ranks = [
        ctx.graph.consts[n].ndim if ctx.graph.is_const(n) else len(ctx.shape(n))
        for n in node.inputs
    ]
    if min(ranks) < 2:
        raise UnsupportedOp(f"MatMul '{node.name}' has a 1-D operand; tflite needs rank >= 2.")
    if ctx.graph.is_const(node.inputs[1]) and ranks[1] == 2:
        _fully_connected(ctx, node, _constant(ctx, node, 1).T, None)
        return
    quantized = ctx.quantized(node) and not any(ctx.graph.is_const(n) for n in node.inputs)
    dtype = "int8" if quantized else "float32"
    operands, adjoint = [], []
    for name in node.inputs:
        tensor, adj = _matmul_operand(ctx, node, name, dtype)
        operands.append(tensor)
        adjoint.append(adj)
    out = ctx.output(node.outputs[0], PLAIN, quantized)
    options = ctx.options_of("BatchMatMulOptions", adjX=adjoint[0], adjY=adjoint[1])
    ctx.emit("BATCH_MATMUL", operands, [out], options)


def _matmul_operand(ctx: Lowering, node: Node, name: str, dtype: str) -> tuple[int, bool]:
    """A BATCH_MATMUL operand: (tensor, adjoint) — a value laid out as its last two axes
    swapped is read as it is, with the adjoint flag."""
    if ctx.graph.is_const(name):
        array = ctx.graph.float_const(name).astype(np.float32)
        return ctx.const(f"{node.name}/{name}", array, "float32"), False
    value = ctx.values[name]
    rank = len(value.shape)
    swapped = tuple(range(rank - 2)) + (rank - 1, rank - 2)
    if value.layout.perm == swapped and value.layout.cols is None:
        return ctx.get(name, value.layout, dtype).tensor, True
    return ctx.get(name, PLAIN, dtype).tensor, False


def _constant(ctx: Lowering, node: Node, index: int) -> np.ndarray:
    name = node.inputs[index]
    if not ctx.graph.is_const(name):
        raise UnsupportedOp(
            f"{node.op_type} '{node.name}' multiplies two runtime tensors; the tflite target "
            "lowers Gemm/MatMul with constant weights (FULLY_CONNECTED)."
        )
    return ctx.graph.float_const(name)


def _fully_connected(
    ctx: Lowering, node: Node, weight: np.ndarray, bias: np.ndarray | None
) -> None:
    """weight is [out, in] in ONNX column order; flattened-NHWC inputs permute its columns."""
    quantized = ctx.quantized(node)
    act, out_name = ctx.fuse_activation(node)
    source = ctx.values[node.inputs[0]]
    layout = source.layout if source.layout.perm is None else PLAIN
    x = ctx.get(node.inputs[0], layout, "int8" if quantized else "float32")
    if x.layout.cols is not None:
        weight = weight[:, list(x.layout.cols)]
    weight = np.ascontiguousarray(weight)
    w_index, w_quant = weight_tensor(
        ctx, f"{node.name}/weights", weight, 0, float_source(node, quantized, 1)
    )
    bias_name = float_source(node, quantized, 2) if node.op_type == "Gemm" else None
    bias = np.zeros(weight.shape[0]) if bias is None else bias
    b_index = bias_tensor(ctx, f"{node.name}/bias", bias, x.quant, w_quant, bias_name)
    keep = len(x.shape) > 2
    out = ctx.output(out_name, PLAIN, quantized)
    options = ctx.options_of("FullyConnectedOptions", fusedActivationFunction=act, keepNumDims=keep)
    ctx.emit(
        "FULLY_CONNECTED",
        [x.tensor, w_index, b_index],
        [out],
        options,
        fc_version(x, w_quant, keep),
    )


def fc_version(x: Value, w_quant: QuantParams | None, keep: bool) -> int:
    """op_version.cc for FULLY_CONNECTED (keep_num_dims, int8, hybrid)."""
    if keep:
        return 5
    if x.dtype == "int8":
        return 4
    if w_quant is not None:
        return legalize.HYBRID_VERSIONS["FULLY_CONNECTED"][1 if len(w_quant.scale) > 1 else 0]
    return 1
