"""Variadic elementwise ops (1..N inputs, numpy broadcasting): Sum, Mean, Max, Min.

TFLite's ADD/MAXIMUM/MINIMUM take two operands (ADD_N needs equal shapes and XNNPACK does not
delegate it), so N inputs are a chain of N − 1 binary ops; Mean is that sum times 1/N. One
input is the input itself. They run in float (an island in int8 models).
"""

from __future__ import annotations

from foundation.errors import UnsupportedOp
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.math_ops import lower_binary_math
from targets.tflite.operands import operands

CHAINS = {"Sum": "ADD", "Mean": "ADD", "Max": "MAXIMUM", "Min": "MINIMUM"}


def _broadcast(a: tuple, b: tuple) -> tuple:
    """numpy broadcasting of two ONNX shapes (None: a dynamic dim)."""
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    return tuple(
        y if x == 1 else x if y == 1 or x == y else None for x, y in zip(a, b, strict=True)
    )


def lower_variadic(ctx: Lowering, node: Node) -> None:
    """Sum/Mean/Max/Min over any number of inputs."""
    names = [n for n in node.inputs if n]
    if node.op_type in ("Max", "Min") and len(names) == 2:
        lower_binary_math(ctx, node)
        return
    if len(names) == 1:
        if ctx.graph.is_const(names[0]):
            raise UnsupportedOp(f"{node.op_type} '{node.name}' of one constant: fold it first.")
        ctx.values[node.outputs[0]] = ctx.get(names[0], None, "float32")
        return
    layout, tensors = operands(ctx, node, names)
    op, last = CHAINS[node.op_type], len(tensors) - 2
    dtype = ctx.plain_dtype(node.outputs[0])
    current, shape = tensors[0], ctx.graph.shapes.get(names[0], ())
    for index, operand in enumerate(tensors[1:]):
        shape = _broadcast(shape, ctx.graph.shapes.get(names[index + 1], ()))
        if index == last and node.op_type != "Mean":
            ctx.emit(op, [current, operand], [ctx.output(node.outputs[0], layout, False)])
            return
        like = Value(current, layout, dtype, None, shape)
        current = ctx.step(op, [current, operand], f"{node.name}/{index}", like, dtype=dtype).tensor
    scale = ctx.scalar(f"{node.name}/inverse_count", 1.0 / len(tensors))
    ctx.emit("MUL", [current, scale], [ctx.output(node.outputs[0], layout, False)])
