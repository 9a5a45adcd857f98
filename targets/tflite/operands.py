"""Operands of element-wise rules: runtime inputs in one common layout, constants laid out to
match (shared by elementwise.py and math_ops.py)."""

from __future__ import annotations

from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import PLAIN, Layout


def runtime_layout(ctx: Lowering, names: list[str]) -> tuple[Layout, Value]:
    """The layout of the highest-rank runtime input; others follow it."""
    runtime = [ctx.values[n] for n in names if not ctx.graph.is_const(n)]
    best = max(runtime, key=lambda v: len(v.shape))
    if any(len(v.shape) != len(best.shape) for v in runtime):
        return PLAIN, best
    best_name = next(n for n in names if ctx.values.get(n) is best)
    return ctx.preferred_layout(best_name), best


def operands(ctx: Lowering, node: Node, names: list[str]) -> tuple[Layout, list[int]]:
    """Runtime inputs in one common layout, constants laid out to match (own dtype kept)."""
    runtime = [n for n in names if not ctx.graph.is_const(n)]
    layout = runtime_layout(ctx, runtime)[0] if runtime else PLAIN
    rank = len(ctx.shape(node.outputs[0]))
    tensors = []
    for index, name in enumerate(names):
        if ctx.graph.is_const(name):
            tensors.append(_const(ctx, f"{node.name}/in{index}", name, layout, rank))
        else:
            tensors.append(ctx.get(name, layout, "float32").tensor)
    return layout, tensors


def _const(ctx: Lowering, tag: str, name: str, layout: Layout, rank: int) -> int:
    array = ctx.graph.float_const(name)
    dtype = "float32" if array.dtype.kind == "f" else str(array.dtype)
    array = array.reshape((1,) * (rank - array.ndim) + array.shape)
    return ctx.const(tag, layout.apply(array).astype(dtype), dtype)
