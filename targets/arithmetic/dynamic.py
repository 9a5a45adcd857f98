"""Dynamically quantized graphs (`--dynamic`) in a chosen int8 arithmetic, on any CPU.

quantize_dynamic writes DynamicQuantizeLinear → MatMulInteger(u8 activation, constant int8
weight) → Cast → Mul. MatMulInteger is an integer op that onnxruntime runs on its U8S8 GEMM
whatever the graph optimization level, so unlike a Q/DQ graph it has no exact form to fall
back on: on x86 without VNNI its pairs of u8×s8 products saturate in int16 even with
optimizations off. Here each MatMulInteger with a constant int8 weight is rewritten into
float64 arithmetic, (a - a_zero) @ (b - b_zero) cast back to int32 (exact: every product sum
of a realistic K fits float64's 53 bits), plus, in the AVX2 pair arithmetic, the same
correction of the pairs at risk that emulate.py adds to Q/DQ layers. Other integer ops whose
kernels can saturate (ConvInteger, DynamicQuantizeLSTM, QAttention, ...) are not modelled:
`unemulated_nodes` names them, so a check can say which figures are this host's kernels.
Written by hand: no library models these kernels' arithmetic.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from targets.arithmetic.emulate import (
    _build_matmul,
    _init,
    _insert_after,
    emulation_model,
    risky_pair_table,
)
from targets.arithmetic.layers import QLayer
from targets.arithmetic.profiles import Int8Arithmetic

# Integer ops onnxruntime runs on its u8×s8 kernels that this module does not rewrite.
UNMODELLED_INTEGER_OPS = (
    "ConvInteger",
    "DynamicQuantizeLSTM",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QAttention",
    "QGemm",
    "QLinearConv",
    "QLinearMatMul",
)
INTEGER_OPS = (*UNMODELLED_INTEGER_OPS, "MatMulInteger")


def integer_matmuls(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The MatMulInteger nodes whose second input is a constant int8 weight (as
    quantize_dynamic writes them), with a u8 activation and a zero weight zero point."""
    inits = {i.name: i for i in model.graph.initializer}  # decoded only where read below
    found = []
    for node in model.graph.node:
        if node.op_type != "MatMulInteger" or node.input[1] not in inits:
            continue
        weight = inits[node.input[1]]
        zero = inits.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        int8_2d = weight.data_type == onnx.TensorProto.INT8 and len(weight.dims) == 2
        if int8_2d and (zero is None or not numpy_helper.to_array(zero).any()):
            found.append(node)
    return found


def unemulated_nodes(model: onnx.ModelProto) -> list[dict]:
    """Integer nodes whose int8 arithmetic neither the exact nor the AVX2 emulation models
    (their figures are this host's kernels in every arithmetic): name, op and why."""
    # by output name: protobuf hands out a new wrapper per access, so id() is not a node's identity
    modelled = {n.output[0] for n in integer_matmuls(model)}
    return [
        {
            "node": node.name or node.output[0],
            "op": node.op_type,
            "why": f"{node.op_type} runs on onnxruntime's int8 kernels at every optimization "
            "level and its arithmetic is not emulated; this host's kernels computed it",
        }
        for node in model.graph.node
        if node.op_type in INTEGER_OPS and node.output[0] not in modelled
    ]


def has_integer_ops(model: onnx.ModelProto) -> bool:
    """Whether the graph computes int8 in integer ops (a dynamic or QOperator graph)."""
    return any(node.op_type in INTEGER_OPS for node in model.graph.node)


def integer_emulation_model(model: onnx.ModelProto, arithmetic: Int8Arithmetic) -> onnx.ModelProto:
    """A copy of model whose MatMulIntegers compute in `arithmetic` when run by exact_session."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inits = {i.name: i for i in out.graph.initializer}
    after: dict[str, list[onnx.NodeProto]] = {}
    for index, node in enumerate(integer_matmuls(out)):
        tag, result = f"dyn{index}", node.output[0]
        node.output[0] = f"{result}_{tag}_unused"  # the integer op stays, its output unread
        weight = numpy_helper.to_array(inits[node.input[1]])
        nodes, new_inits = _exact_matmul(node, weight, tag)
        table = risky_pair_table(_layer(node, weight)) if arithmetic.pair_saturation else None
        if table is None:
            nodes.append(helper.make_node("Identity", [f"{tag}_exact"], [f"{tag}_total"]))
        else:
            more, more_inits = _pair_correction(node, weight, table, tag)
            nodes, new_inits = nodes + more, new_inits + more_inits
        nodes.append(
            helper.make_node("Cast", [f"{tag}_total"], [result], to=onnx.TensorProto.INT32)
        )
        out.graph.initializer.extend(new_inits)
        after[node.output[0]] = nodes
    _insert_after(out, after)
    return out


def _exact_matmul(node: onnx.NodeProto, weight: np.ndarray, tag: str) -> tuple[list, list]:
    """Nodes computing `{tag}_exact` = (a - a_zero) @ b in float64."""
    double = onnx.TensorProto.DOUBLE
    nodes = [helper.make_node("Cast", [node.input[0]], [f"{tag}_ad"], to=double)]
    centred = f"{tag}_ad"
    if len(node.input) > 2 and node.input[2]:
        nodes += [
            helper.make_node("Cast", [node.input[2]], [f"{tag}_zd"], to=double),
            helper.make_node("Sub", [f"{tag}_ad", f"{tag}_zd"], [f"{tag}_ac"]),
        ]
        centred = f"{tag}_ac"
    nodes.append(helper.make_node("MatMul", [centred, f"{tag}_b"], [f"{tag}_exact"]))
    return nodes, [_init(f"{tag}_b", weight.astype(np.float64))]


def _layer(node: onnx.NodeProto, weight: np.ndarray) -> QLayer:
    """The MatMulInteger as emulate.py's layer: raw u8 input, weight [K, N], unit scales."""
    matmul = helper.make_node("MatMul", node.input[:2], node.output[:1])  # pairs along K
    return QLayer(matmul, node.input[0], 1.0, 0, False, node, weight, np.ones(weight.shape[1]))


def _pair_correction(
    node: onnx.NodeProto, weight: np.ndarray, table: dict, tag: str
) -> tuple[list, list]:
    """`{tag}_total` = `{tag}_exact` + the int16 pair corrections over the raw u8 input (the
    kernel multiplies raw values; zero points are subtracted exactly afterwards)."""
    zero = _init(f"{tag}_fzero", np.float32(0))
    cast = helper.make_node("Cast", [node.input[0]], [f"{tag}_a"], to=onnx.TensorProto.FLOAT)
    correction = f"{tag}_correction"
    more, inits = _build_matmul(_layer(node, weight), f"{tag}_a", table, tag, zero.name, correction)
    return [
        cast,
        *more,
        helper.make_node("Cast", [correction], [f"{tag}_wide"], to=onnx.TensorProto.DOUBLE),
        helper.make_node("Add", [f"{tag}_exact", f"{tag}_wide"], [f"{tag}_total"]),
    ], [zero, *inits]


def arithmetic_model(model: onnx.ModelProto, arithmetic: Int8Arithmetic) -> onnx.ModelProto:
    """A model that, run by exact_session, computes `model` (Q/DQ, dynamic, or both) in
    `arithmetic`: integer MatMuls rewritten, Q/DQ layers emulated."""
    if has_integer_ops(model):
        model = integer_emulation_model(model, arithmetic)
    return emulation_model(model, arithmetic)
