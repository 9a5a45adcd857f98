"""Lowering rules for data movement: reshape family, transpose, concat, split, slice, reduce."""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import (
    PLAIN,
    Layout,
    after_transpose,
    flatten_cols,
    keeps_order,
    reduce_layout,
)

# Consumers that absorb a flattened-NHWC column order by permuting their weight columns.
COLUMN_ABSORBERS = {"Gemm", "MatMul"}


def _dtype(ctx: Lowering, node: Node) -> str:
    return "int8" if ctx.quantized(node) else "float32"


def _reshape(ctx: Lowering, node: Node, source_layout: Layout, out_layout: Layout) -> None:
    """RESHAPE to the ONNX output shape laid out as out_layout (-1 for the dynamic batch)."""
    x = ctx.get(node.inputs[0], source_layout, _dtype(ctx, node))
    out_shape = ctx.shape(node.outputs[0])
    flat = [-1 if d is None else int(d) for d in out_layout.shape(out_shape)]
    if flat.count(-1) > 1:
        raise UnsupportedOp(f"{node.op_type} '{node.name}' has more than one dynamic output dim.")
    out = ctx.output(node.outputs[0], out_layout, x.quant is not None, x.quant)
    shape = ctx.shape_const(f"{node.name}/shape", flat)
    ctx.emit("RESHAPE", [x.tensor, shape], [out], ctx.options_of("ReshapeOptions", newShape=flat))


def lower_reshape(ctx: Lowering, node: Node) -> None:
    """Reshape/Flatten: a flatten of an NHWC tensor feeding FCs keeps NHWC order (no TRANSPOSE)."""
    value = ctx.values[node.inputs[0]]
    in_shape, out_shape = ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0])
    flattens = len(out_shape) == 2 and len(in_shape) > 2 and in_shape[0] == out_shape[0]
    batch_first = value.layout.perm is not None and value.layout.perm[0] == 0
    if batch_first and flattens and value.layout.cols is None:
        cols = flatten_cols(in_shape, value.layout)
        readers = ctx.consumers.get(node.outputs[0], [])
        absorbed = readers and all(r.op_type in COLUMN_ABSORBERS for r in readers)
        if cols is None or (absorbed and node.outputs[0] not in ctx.graph_outputs):
            _reshape(ctx, node, value.layout, Layout(cols=cols) if cols else PLAIN)
            return
    if value.layout.cols is not None:
        raise UnsupportedOp(f"{node.op_type} '{node.name}' reshapes a permuted flat tensor.")
    _reshape(ctx, node, value.layout if keeps_order(in_shape, value.layout) else PLAIN, PLAIN)


def lower_squeeze(ctx: Lowering, node: Node) -> None:
    """Squeeze: dropping size-1 dims keeps element order, so any layout reshapes directly."""
    value = ctx.values[node.inputs[0]]
    in_shape = ctx.shape(node.inputs[0])
    axes = _axes(ctx, node, len(in_shape))
    if axes is None:
        axes = tuple(i for i, d in enumerate(in_shape) if d == 1)
    layout = reduce_layout(value.layout, axes, len(in_shape), keepdims=False)
    _reshape(ctx, node, value.layout, layout)


def lower_unsqueeze(ctx: Lowering, node: Node) -> None:
    """Unsqueeze → RESHAPE in the input's layout: unit axes go where they cost no TRANSPOSE."""
    value = ctx.values[node.inputs[0]]
    rank = len(ctx.shape(node.outputs[0]))
    axes = _axes(ctx, node, rank) or ()
    if value.layout.perm is None or value.layout.cols is not None or not axes:
        _reshape(ctx, node, PLAIN, PLAIN)
        return
    _reshape(ctx, node, value.layout, unsqueeze_layout(value.layout, axes, rank))


def unsqueeze_layout(layout: Layout, axes: tuple[int, ...], rank: int) -> Layout:
    """The layout after inserting unit ONNX axes: each new axis a sits just before the
    TFLite position of ONNX axis a + 1 (unit dims move freely without reordering data)."""
    kept = [a for a in range(rank) if a not in axes]  # output axis of each input axis
    order = [kept[p] for p in layout.perm]
    for axis in sorted(axes):
        following = [i for i, a in enumerate(order) if a > axis]
        order.insert(following[0] if following else len(order), axis)
    perm = tuple(order)
    return PLAIN if perm == tuple(range(rank)) else Layout(perm)


def lower_transpose(ctx: Lowering, node: Node) -> None:
    """Transpose folds into the layout: same TFLite tensor, composed permutation, no op."""
    value = ctx.values[node.inputs[0]]
    rank = len(ctx.shape(node.inputs[0]))
    perm = tuple(node.attrs.get("perm", tuple(reversed(range(rank)))))
    if value.layout.cols is not None:
        value = ctx.get(node.inputs[0], PLAIN)
    layout = after_transpose(value.layout, perm)
    ctx.values[node.outputs[0]] = Value(
        value.tensor, layout, value.dtype, value.quant, ctx.shape(node.outputs[0])
    )


def _axes(ctx: Lowering, node: Node, rank: int) -> tuple[int, ...] | None:
    """Axes from the attribute (older opsets) or the constant second input."""
    if "axes" in node.attrs:
        return tuple(int(a) % rank for a in node.attrs["axes"])
    if len(node.inputs) > 1 and node.inputs[1]:
        return tuple(int(a) % rank for a in ctx.graph.consts[node.inputs[1]].reshape(-1))
    return None


def lower_concat(ctx: Lowering, node: Node) -> None:
    """Concat along the remapped axis; int8 inputs are requantized to the output's params."""
    rank = len(ctx.shape(node.outputs[0]))
    runtime = [n for n in node.inputs if not ctx.graph.is_const(n)]
    layouts = [ctx.values[n].layout for n in runtime]
    layout = max(set(layouts), key=layouts.count) if layouts else PLAIN
    layout = PLAIN if layout.cols is not None else layout
    if layout.is_plain and rank == 4:
        layout = ctx.preferred_layout(runtime[0])
    quantized = ctx.quantized(node)
    quant = ctx.graph.act_quant.get(node.outputs[0]) if quantized else None
    act, out_name = ctx.fuse_activation(node)
    tensors = []
    for name in node.inputs:
        if ctx.graph.is_const(name):
            ctx.values[name] = _const_value(ctx, name)
        tensors.append(ctx.get(name, layout, "int8" if quantized else "float32", quant).tensor)
    out = ctx.output(out_name, layout, quantized, quant)
    axis = layout.axis(int(node.attrs["axis"]), rank)
    options = ctx.options_of("ConcatenationOptions", axis=axis, fusedActivationFunction=act)
    ctx.emit("CONCATENATION", tensors, [out], options)


def _const_value(ctx: Lowering, name: str) -> Value:
    """A float constant operand as a plain TFLite tensor (quantized by ctx.get when needed)."""
    array = ctx.graph.float_const(name)
    index = ctx.const(name, array.astype(np.float32), "float32")
    return Value(index, PLAIN, "float32", None, array.shape)


def lower_split(ctx: Lowering, node: Node) -> None:
    """Split → SPLIT_V along the remapped axis; outputs share the input's params."""
    rank = len(ctx.shape(node.inputs[0]))
    layout = ctx.preferred_layout(node.inputs[0])
    x = ctx.get(node.inputs[0], layout, _dtype(ctx, node))
    axis = int(node.attrs.get("axis", 0)) % rank
    sizes = [ctx.shape(o)[axis] for o in node.outputs]
    outs = [ctx.output(o, layout, x.quant is not None, x.quant) for o in node.outputs]
    inputs = [
        x.tensor,
        ctx.shape_const(f"{node.name}/sizes", sizes),
        ctx.const(f"{node.name}/axis", np.array(layout.axis(axis, rank), np.int32), "int32"),
    ]
    ctx.emit("SPLIT_V", inputs, outs, ctx.options_of("SplitVOptions", numSplits=len(outs)))


def lower_slice(ctx: Lowering, node: Node) -> None:
    """Slice (constant starts/ends/axes/steps) → STRIDED_SLICE in the input's layout."""
    shape = ctx.shape(node.inputs[0])
    rank = len(shape)
    starts, ends = (ctx.graph.consts[n].reshape(-1).astype(np.int64) for n in node.inputs[1:3])
    axes = (
        ctx.graph.consts[node.inputs[3]].reshape(-1)
        if len(node.inputs) > 3 and node.inputs[3]
        else np.arange(len(starts))
    )
    steps = (
        ctx.graph.consts[node.inputs[4]].reshape(-1)
        if len(node.inputs) > 4 and node.inputs[4]
        else np.ones(len(starts), np.int64)
    )
    layout = ctx.preferred_layout(node.inputs[0])
    x = ctx.get(node.inputs[0], layout, _dtype(ctx, node))
    begin, end, stride = [0] * rank, [0] * rank, [1] * rank
    mask = (1 << rank) - 1
    for start, stop, axis, step in zip(starts, ends, axes, steps, strict=True):
        t = layout.axis(int(axis), rank)
        size = shape[int(axis) % rank]
        begin[t], end[t] = _clamp(start, size, step), _clamp(stop, size, step)
        stride[t] = int(step)
        mask &= ~(1 << t)
    out = ctx.output(node.outputs[0], layout, x.quant is not None, x.quant)
    inputs = [x.tensor] + [
        ctx.shape_const(f"{node.name}/{k}", v)
        for k, v in (("begin", begin), ("end", end), ("strides", stride))
    ]
    options = ctx.options_of("StridedSliceOptions", beginMask=mask, endMask=mask)
    ctx.emit("STRIDED_SLICE", inputs, [out], options)


def _clamp(index: int, size: int | None, step: int) -> int:
    """An ONNX slice bound made concrete for a known axis size (INT64 max → size)."""
    if not size:
        return int(np.clip(index, -(2**31), 2**31 - 1))
    index = index + size if index < 0 else index
    return int(np.clip(index, -1 if step < 0 else 0, size))


def lower_reduce_mean(ctx: Lowering, node: Node) -> None:
    """ReduceMean/ReduceMax over remapped axes → MEAN/REDUCE_MAX (kept dims keep the layout)."""
    rank = len(ctx.shape(node.inputs[0]))
    if ctx.plain_dtype(node.inputs[0]) == "bool":
        raise UnsupportedOp(f"{node.op_type} '{node.name}' reduces bools; tflite cannot.")
    axes = _axes(ctx, node, rank)
    if not axes and node.attrs.get("noop_with_empty_axes", 0):
        ctx.values[node.outputs[0]] = ctx.get(node.inputs[0], None, _dtype(ctx, node))
        return
    axes = axes or tuple(range(rank))
    keep = bool(node.attrs.get("keepdims", 1))
    layout = ctx.preferred_layout(node.inputs[0])
    quantized = ctx.quantized(node)
    x = ctx.get(node.inputs[0], layout, "int8" if quantized else "float32")
    out_layout = reduce_layout(layout, axes, rank, keep)
    out = ctx.output(node.outputs[0], out_layout, quantized)
    axis_tensor = ctx.shape_const(f"{node.name}/axes", sorted(layout.axis(a, rank) for a in axes))
    op = {"ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX"}[node.op_type]
    ctx.emit(op, [x.tensor, axis_tensor], [out], ctx.options_of("ReducerOptions", keepDims=keep))
