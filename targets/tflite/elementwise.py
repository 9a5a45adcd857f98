"""Lowering rules for elementwise ops: broadcasting arithmetic, activations and Softmax."""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite import legalize
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import PLAIN, Layout
from targets.tflite.math_ops import lower_clip_runtime
from targets.tflite.operands import operands, runtime_layout
from targets.tflite.weights import const_operand

BINARY_OPS = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV"}
BINARY_OPTIONS = {
    "ADD": "AddOptions",
    "SUB": "SubOptions",
    "MUL": "MulOptions",
    "DIV": "DivOptions",
}
# Ops with an int8 kernel whose output may take any params (the others run in float).
INT8_BINARY = {"ADD", "SUB", "MUL"}
# int8 ops XNNPACK leaves to the builtin kernels (splitting the delegate): run them in float.
FLOAT_IN_INT8 = {"HARD_SWISH"}
UNARY_OPS = {
    "Relu": "RELU",
    "Sigmoid": "LOGISTIC",
    "Tanh": "TANH",
    "HardSwish": "HARD_SWISH",
    "LeakyRelu": "LEAKY_RELU",
}


def lower_binary(ctx: Lowering, node: Node) -> None:
    """Add/Sub/Mul/Div with numpy broadcasting; Div by a constant becomes MUL by its inverse."""
    op = BINARY_OPS[node.op_type]
    a, b = node.inputs
    if op == "DIV" and ctx.graph.is_const(b):
        op, const_b = "MUL", 1.0 / ctx.graph.float_const(b)
    else:
        const_b = ctx.graph.float_const(b) if ctx.graph.is_const(b) else None
    if ctx.graph.is_const(a):
        if op in ("SUB", "DIV"):
            _constant_first(ctx, node, op)
            return
        a, b, const_b = b, a, ctx.graph.float_const(a)
    quantized = ctx.quantized(node) and op in INT8_BINARY
    dtype = "int8" if quantized else "float32"
    layout, like = runtime_layout(ctx, [a] if const_b is not None else [a, b])
    act, out_name = ctx.fuse_activation(node)
    first = ctx.get(a, layout, dtype)
    like = Value(first.tensor, layout, dtype, first.quant, ctx.shape(node.outputs[0]))
    if const_b is not None:
        second = const_operand(
            ctx, f"{node.name}/operand", np.asarray(const_b, np.float32), quantized, like
        )
    else:
        second = ctx.get(b, layout, dtype).tensor
    out = ctx.output(out_name, layout, quantized)
    options = ctx.options_of(BINARY_OPTIONS[op], fusedActivationFunction=act)
    ctx.emit(op, [first.tensor, second], [out], options)


def _constant_first(ctx: Lowering, node: Node, op: str) -> None:
    """c − x or c / x with a constant c: float, the constant as first operand."""
    layout, inputs = operands(ctx, node, node.inputs)
    out = ctx.output(node.outputs[0], layout, False)
    ctx.emit(op, inputs, [out])


def lower_unary(ctx: Lowering, node: Node) -> None:
    """Relu/Sigmoid/Tanh/HardSwish/LeakyRelu → one TFLite op in the input's layout."""
    op = UNARY_OPS[node.op_type]
    quantized = ctx.quantized(node) and op not in FLOAT_IN_INT8
    if ctx.quantized(node) and not quantized:
        _float_island(ctx, node, op)
        return
    x = ctx.get(
        node.inputs[0], ctx.preferred_layout(node.inputs[0]), "int8" if quantized else "float32"
    )
    quant = (
        legalize.output_quant(op, x.quant, ctx.graph.act_quant.get(node.outputs[0]))
        if quantized
        else None
    )
    out = ctx.output(node.outputs[0], x.layout, quantized, quant)
    options = None
    if op == "LEAKY_RELU":
        options = ctx.options_of("LeakyReluOptions", alpha=float(node.attrs.get("alpha", 0.01)))
    ctx.emit(op, [x.tensor], [out], options)


def _float_island(ctx: Lowering, node: Node, op: str) -> None:
    """DEQUANTIZE → float op → QUANTIZE to the calibrated params (XNNPACK delegates all three)."""
    x = ctx.get(node.inputs[0], ctx.preferred_layout(node.inputs[0]), "float32")
    name = f"{node.outputs[0]}/float"
    ctx.graph.shapes[name] = ctx.shape(node.outputs[0])
    mid = ctx.output(name, x.layout, False)
    ctx.emit(op, [x.tensor], [mid])
    quant = ctx.graph.act_quant[node.outputs[0]]
    out = ctx.new_value(node.outputs[0], mid.shape, mid.layout, "int8", quant)
    ctx.emit("QUANTIZE", [mid.tensor], [out])
    ctx.values[node.outputs[0]] = out


def lower_clip(ctx: Lowering, node: Node) -> None:
    """Clip → RELU6 / RELU_N1_TO_1 / RELU when the bounds match, else MAXIMUM + MINIMUM."""
    bounds = legalize.clip_bounds(node, ctx.graph)
    if bounds == (-np.inf, np.inf):  # no bounds: the input itself
        lower_identity(ctx, node)
        return
    if bounds is None:
        lower_clip_runtime(ctx, node)
        return
    named = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, np.inf): "RELU"}
    quantized = ctx.quantized(node)
    dtype = "int8" if quantized else "float32"
    x = ctx.get(node.inputs[0], ctx.preferred_layout(node.inputs[0]), dtype)
    if bounds in named:
        out = ctx.output(node.outputs[0], x.layout, quantized)
        ctx.emit(named[bounds], [x.tensor], [out])
        return
    _clamp(ctx, node, x, bounds)


def _clamp(ctx: Lowering, node: Node, x: Value, bounds: tuple[float, float]) -> None:
    """General Clip in float: MAXIMUM with the low bound, then MINIMUM with the high one."""
    current = ctx.get(node.inputs[0], x.layout, "float32")
    steps = [
        (op, b) for op, b in (("MAXIMUM", bounds[0]), ("MINIMUM", bounds[1])) if np.isfinite(b)
    ]
    for index, (op, bound) in enumerate(steps):
        name = node.outputs[0] if index == len(steps) - 1 else f"{node.name}/{op.lower()}"
        ctx.graph.shapes.setdefault(name, ctx.shape(node.outputs[0]))
        operand = ctx.const(f"{name}/bound", np.array([bound], np.float32), "float32")
        out = ctx.output(name, current.layout, False)
        ctx.emit(op, [current.tensor, operand], [out])
        current = out


def lower_prelu(ctx: Lowering, node: Node) -> None:
    """PRelu → PRELU with the slope laid out like the input (a runtime slope: in float)."""
    if not ctx.graph.is_const(node.inputs[1]):
        layout, inputs = operands(ctx, node, node.inputs[:2])
        ctx.emit("PRELU", inputs, [ctx.output(node.outputs[0], layout, False)])
        return
    quantized = ctx.quantized(node)
    x = ctx.get(
        node.inputs[0], ctx.preferred_layout(node.inputs[0]), "int8" if quantized else "float32"
    )
    slope = const_operand(
        ctx, f"{node.name}/alpha", ctx.graph.float_const(node.inputs[1]), quantized, x
    )
    out = ctx.output(node.outputs[0], x.layout, quantized)
    ctx.emit("PRELU", [x.tensor, slope], [out])


def lower_hard_sigmoid(ctx: Lowering, node: Node) -> None:
    """HardSigmoid → MUL(alpha), ADD(beta) with fused RELU, MINIMUM(1) (in float)."""
    x = ctx.get(node.inputs[0], ctx.preferred_layout(node.inputs[0]), "float32")
    alpha, beta = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
    current = x
    for op, operand, act in (
        ("MUL", alpha, legalize.NO_ACTIVATION),
        ("ADD", beta, legalize.ACT.RELU),
        ("MINIMUM", 1.0, None),
    ):
        last = op == "MINIMUM"
        name = node.outputs[0] if last else f"{node.name}/{op.lower()}"
        ctx.graph.shapes.setdefault(name, ctx.shape(node.outputs[0]))
        const = ctx.const(f"{name}/operand", np.array([operand], np.float32), "float32")
        out = ctx.output(name, current.layout, False)
        options = (
            None if act is None else ctx.options_of(BINARY_OPTIONS[op], fusedActivationFunction=act)
        )
        ctx.emit(op, [current.tensor, const], [out], options)
        current = out


def lower_softmax(ctx: Lowering, node: Node) -> None:
    """Softmax/LogSoftmax in float over any axis: the input is laid out with that axis last
    (its own layout when it already is, else one TRANSPOSE); readers absorb the layout."""
    rank = len(ctx.shape(node.inputs[0]))
    axis = int(node.attrs.get("axis", -1)) % rank
    value = ctx.values[node.inputs[0]]
    layout = value.layout if value.layout.cols is None else PLAIN
    if layout.axis(axis, rank) != rank - 1:
        perm = tuple(a for a in range(rank) if a != axis) + (axis,)
        layout = Layout(perm)
    x = ctx.get(node.inputs[0], layout, "float32")
    out = ctx.output(node.outputs[0], layout, False)
    if node.op_type == "LogSoftmax":
        ctx.emit("LOG_SOFTMAX", [x.tensor], [out])
        return
    ctx.emit("SOFTMAX", [x.tensor], [out], ctx.options_of("SoftmaxOptions", beta=1.0))


def lower_requantize(ctx: Lowering, node: Node) -> None:
    """A tensor quantized twice with different params: one int8→int8 QUANTIZE."""
    ctx.values[node.outputs[0]] = ctx.get(
        node.inputs[0], None, "int8", ctx.graph.act_quant[node.outputs[0]]
    )


def lower_identity(ctx: Lowering, node: Node) -> None:
    """Identity: the output is the input's TFLite tensor."""
    ctx.values[node.outputs[0]] = ctx.values[node.inputs[0]]


def lower_dropout(ctx: Lowering, node: Node) -> None:
    """Dropout at inference is the identity; training mode and the mask output are refused."""
    training = node.inputs[2] if len(node.inputs) > 2 else ""
    if training and (not ctx.graph.is_const(training) or ctx.graph.consts[training].any()):
        raise UnsupportedOp(
            f"Dropout '{node.name}' may run in training mode (training_mode input "
            f"'{training}'); tflite lowers inference Dropout only."
        )
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedOp(f"Dropout '{node.name}': the mask output is not lowered to tflite.")
    lower_identity(ctx, node)
