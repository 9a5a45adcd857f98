"""Index and rearrangement ops: Gather (constant or runtime ids), TopK, ArgMax/ArgMin, CumSum,
Tile, Expand, DepthToSpace/SpaceToDepth and the reductions beyond mean/max."""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import NHWC, PLAIN, Layout, reduce_layout
from targets.tflite.shape_ops import _axes, _dtype, _reshape
from targets.tflite.writer import TENSOR_TYPES

CHANNELS_LAST = Layout(NHWC)
# Reductions in float: ONNX op → TFLite op (ReduceMean/ReduceMax keep their int8 rule).
REDUCERS = {"ReduceSum": "SUM", "ReduceMin": "REDUCE_MIN", "ReduceProd": "REDUCE_PROD"}


def lower_gather(ctx: Lowering, node: Node) -> None:
    """Gather: runtime ids (embeddings) → GATHER; a scalar constant index → STRIDED_SLICE in the
    input's layout; an in-order read of a 1-D tensor → RESHAPE; other constant indices → GATHER."""
    data = node.inputs[0]
    in_shape = ctx.graph.consts[data].shape if ctx.graph.is_const(data) else ctx.shape(data)
    rank = len(in_shape)
    axis = int(node.attrs.get("axis", 0)) % rank
    options = ctx.options_of("GatherOptions", axis=axis)
    if not ctx.graph.is_const(node.inputs[1]):
        data = _gather_data(ctx, node)
        ids = _wrapped_ids(ctx, node, data.shape[axis])
        out = ctx.output(node.outputs[0], PLAIN, data.quant is not None, data.quant)
        ctx.emit("GATHER", [data.tensor, ids], [out], options)
        return
    indices = ctx.graph.consts[node.inputs[1]].astype(np.int64)
    if in_shape[axis] is not None:  # GATHER reads negative indices as out of bounds
        indices = indices % in_shape[axis]
    if rank == 1 and np.array_equal(indices.reshape(-1), np.arange(in_shape[0] or -1)):
        _reshape(ctx, node, PLAIN, PLAIN)
        return
    if indices.ndim == 0:
        _select(ctx, node, axis, int(indices) % (in_shape[axis] or 1 << 30))
        return
    x = ctx.get(node.inputs[0], PLAIN, _dtype(ctx, node))
    out = ctx.output(node.outputs[0], PLAIN, x.quant is not None, x.quant)
    index = ctx.const(f"{node.name}/indices", indices.astype(np.int32), "int32")
    ctx.emit("GATHER", [x.tensor, index], [out], options)


def _wrapped_ids(ctx: Lowering, node: Node, size: int | None) -> int:
    """Runtime ids with ONNX's negative indices wrapped (FLOOR_MOD by the axis length):
    TFLite's GATHER fails on a negative index."""
    ids = ctx.get(node.inputs[1])
    if size is None:
        return ids.tensor
    length = ctx.const(f"{node.name}/length", np.array([size], ids.dtype), ids.dtype)
    return ctx.step(
        "FLOOR_MOD", [ids.tensor, length], f"{node.name}/ids", ids, dtype=ids.dtype
    ).tensor


def lower_gather_nd(ctx: Lowering, node: Node) -> None:
    """GatherND (batch_dims 0) → GATHER_ND; constant or runtime indices."""
    if int(node.attrs.get("batch_dims", 0)):
        raise UnsupportedOp(
            f"GatherND '{node.name}' has batch_dims > 0; tflite's GATHER_ND has none."
        )
    data = _gather_data(ctx, node)
    indices = node.inputs[1]
    if ctx.graph.is_const(indices):
        array = ctx.graph.consts[indices].astype(np.int32)
        index = ctx.const(f"{node.name}/indices", array, "int32")
    else:
        index = ctx.get(indices).tensor
    out = ctx.output(node.outputs[0], PLAIN, data.quant is not None, data.quant)
    ctx.emit("GATHER_ND", [data.tensor, index], [out])


def _gather_data(ctx: Lowering, node: Node) -> Value:
    """The table an embedding lookup reads: a constant (float32) or a runtime tensor."""
    name = node.inputs[0]
    if ctx.graph.is_const(name):
        table = ctx.graph.float_const(name)
        dtype = "float32" if table.dtype.kind == "f" else str(table.dtype)
        index = ctx.const(f"{node.name}/table", table.astype(dtype), dtype)
        return Value(index, PLAIN, dtype, None, table.shape)
    return ctx.get(name, PLAIN, _dtype(ctx, node))


def _select(ctx: Lowering, node: Node, axis: int, index: int) -> None:
    """x[..., index, ...] as a STRIDED_SLICE that drops the axis (no TRANSPOSE)."""
    value = ctx.values[node.inputs[0]]
    layout = value.layout if value.layout.cols is None else PLAIN
    x = ctx.get(node.inputs[0], layout, _dtype(ctx, node))
    rank = len(x.shape)
    t = layout.axis(axis, rank)
    begin, end, strides = [0] * rank, [0] * rank, [1] * rank
    begin[t], end[t] = index, index + 1
    mask = ((1 << rank) - 1) & ~(1 << t)
    out_layout = reduce_layout(layout, (axis,), rank, keepdims=False)
    out = ctx.output(node.outputs[0], out_layout, x.quant is not None, x.quant)
    inputs = [x.tensor] + [
        ctx.shape_const(f"{node.name}/{k}", v)
        for k, v in (("begin", begin), ("end", end), ("strides", strides))
    ]
    options = ctx.options_of(
        "StridedSliceOptions", beginMask=mask, endMask=mask, shrinkAxisMask=1 << t
    )
    ctx.emit("STRIDED_SLICE", inputs, [out], options)


def lower_reduce(ctx: Lowering, node: Node) -> None:
    """ReduceSum/ReduceMin/ReduceProd → SUM/REDUCE_MIN/REDUCE_PROD; ReduceL2 → sqrt(sum(x²))."""
    rank = len(ctx.shape(node.inputs[0]))
    refuse_bool_reduce(ctx, node)
    axes = _axes(ctx, node, rank)
    if not axes:
        if node.attrs.get("noop_with_empty_axes", 0):
            ctx.values[node.outputs[0]] = ctx.get(node.inputs[0], None, "float32")
            return
        axes = tuple(range(rank))
    keep = bool(node.attrs.get("keepdims", 1))
    layout = ctx.preferred_layout(node.inputs[0])
    x = ctx.get(node.inputs[0], layout, "float32")
    out_layout = reduce_layout(layout, axes, rank, keep)
    axis_tensor = ctx.shape_const(f"{node.name}/axes", sorted(layout.axis(a, rank) for a in axes))
    options = ctx.options_of("ReducerOptions", keepDims=keep)
    source, op = x.tensor, REDUCERS.get(node.op_type, "SUM")
    if node.op_type in ("ReduceL2", "ReduceSumSquare"):
        source = ctx.step("SQUARE", [x.tensor], f"{node.name}/square", x).tensor
    if node.op_type == "ReduceL2":
        out_shape = ctx.shape(node.outputs[0])
        like = Value(source, out_layout, "float32", None, out_shape)
        total = ctx.step("SUM", [source, axis_tensor], f"{node.name}/sum", like, options)
        out = ctx.output(node.outputs[0], out_layout, False)
        ctx.emit("SQRT", [total.tensor], [out])
        return
    out = ctx.output(node.outputs[0], out_layout, False)
    ctx.emit(op, [source, axis_tensor], [out], options)


def refuse_bool_reduce(ctx: Lowering, node: Node) -> None:
    """TFLite's reductions have no bool kernels (ONNX's ReduceMax/Min on bool is any/all)."""
    if ctx.plain_dtype(node.inputs[0]) == "bool":
        raise UnsupportedOp(f"{node.op_type} '{node.name}' reduces bools; tflite cannot.")


def lower_arg_extreme(ctx: Lowering, node: Node) -> None:
    """ArgMax/ArgMin → ARG_MAX/ARG_MIN (int64 indices; keepdims via a RESHAPE). ONNX's
    select_last_index: the same op over the axis reversed (REVERSE_V2), index n − 1 − i."""
    rank = len(ctx.shape(node.inputs[0]))
    axis = int(node.attrs.get("axis", 0)) % rank
    x = ctx.get(node.inputs[0], PLAIN, "float32")
    last = bool(node.attrs.get("select_last_index", 0))
    if last and x.shape[axis] is None:
        raise UnsupportedOp(f"{node.op_type} '{node.name}': select_last_index on a dynamic axis.")
    axis_tensor = ctx.const(f"{node.name}/axis", np.array([axis], np.int32), "int32")
    if last:
        x = ctx.step(
            "REVERSE_V2", [x.tensor, axis_tensor], f"{node.name}/reversed", x, dtype=x.dtype
        )
    op = "ARG_MAX" if node.op_type == "ArgMax" else "ARG_MIN"
    kind = "ArgMaxOptions" if op == "ARG_MAX" else "ArgMinOptions"
    options = ctx.options_of(kind, outputType=TENSOR_TYPES["int64"])
    reduced = tuple(d for i, d in enumerate(x.shape) if i != axis)
    like = Value(x.tensor, PLAIN, "int64", None, reduced)
    flat = ctx.step(op, [x.tensor, axis_tensor], f"{node.name}/flat", like, options, "int64")
    if last:
        top = ctx.const(f"{node.name}/top", np.array([x.shape[axis] - 1], np.int64), "int64")
        flat = ctx.step("SUB", [top, flat.tensor], f"{node.name}/from_end", flat, dtype="int64")
    out = ctx.output(node.outputs[0], PLAIN, False)
    dims = [-1 if d is None else int(d) for d in ctx.shape(node.outputs[0])]
    options = ctx.options_of("ReshapeOptions", newShape=dims)
    shape = ctx.shape_const(f"{node.name}/shape", dims)
    ctx.emit("RESHAPE", [flat.tensor, shape], [out], options)


def lower_topk(ctx: Lowering, node: Node) -> None:
    """TopK (largest, sorted, last axis) → TOPK_V2; indices cast to ONNX's int64."""
    rank = len(ctx.shape(node.inputs[0]))
    if int(node.attrs.get("axis", -1)) % rank != rank - 1:
        raise UnsupportedOp(f"TopK '{node.name}': tflite's TOPK_V2 works over the last axis.")
    if not ctx.graph.is_const(node.inputs[1]):
        raise UnsupportedOp(f"TopK '{node.name}' has a runtime k; tflite needs a constant.")
    k = int(ctx.graph.consts[node.inputs[1]].reshape(-1)[0])
    x = ctx.get(node.inputs[0], PLAIN, "float32")
    smallest = not node.attrs.get("largest", 1)
    if smallest:  # the k largest of −x, negated back
        x = ctx.step("NEG", [x.tensor], f"{node.name}/negated", x, dtype=x.dtype)
        name = f"{node.name}/negated_values"
        ctx.graph.shapes[name] = ctx.shape(node.outputs[0])
    values = ctx.output(name if smallest else node.outputs[0], PLAIN, False)
    index_shape = ctx.shape(node.outputs[1])
    index32 = ctx.new_value(f"{node.name}/indices32", index_shape, PLAIN, "int32", None)
    ctx.emit(
        "TOPK_V2",
        [x.tensor, ctx.const(f"{node.name}/k", np.array(k, np.int32), "int32")],
        [values, index32],
    )
    if smallest:
        ctx.emit("NEG", [values.tensor], [ctx.output(node.outputs[0], PLAIN, False)])
    out = ctx.output(node.outputs[1], PLAIN, False)
    options = ctx.options_of(
        "CastOptions", inDataType=TENSOR_TYPES["int32"], outDataType=TENSOR_TYPES["int64"]
    )
    ctx.emit("CAST", [index32.tensor], [out], options)


def lower_cumsum(ctx: Lowering, node: Node) -> None:
    """CumSum → CUMSUM (exclusive/reverse as options) along the remapped axis."""
    rank = len(ctx.shape(node.inputs[0]))
    layout = ctx.preferred_layout(node.inputs[0])
    x = ctx.get(node.inputs[0], layout, "float32")
    axis = int(ctx.graph.consts[node.inputs[1]].reshape(-1)[0]) % rank
    out = ctx.output(node.outputs[0], layout, False)
    axis_tensor = ctx.const(
        f"{node.name}/axis", np.array(layout.axis(axis, rank), np.int32), "int32"
    )
    options = ctx.options_of(
        "CumsumOptions",
        exclusive=bool(node.attrs.get("exclusive", 0)),
        reverse=bool(node.attrs.get("reverse", 0)),
    )
    ctx.emit("CUMSUM", [x.tensor, axis_tensor], [out], options)


def lower_tile(ctx: Lowering, node: Node) -> None:
    """Tile (constant repeats) → TILE with the repeats laid out like the input."""
    layout = ctx.preferred_layout(node.inputs[0])
    x = ctx.get(node.inputs[0], layout, _dtype(ctx, node))
    repeats = ctx.graph.consts[node.inputs[1]].reshape(-1).astype(np.int64)
    laid = repeats if layout.perm is None else repeats[list(layout.perm)]
    out = ctx.output(node.outputs[0], layout, x.quant is not None, x.quant)
    ctx.emit("TILE", [x.tensor, ctx.shape_const(f"{node.name}/repeats", laid.tolist())], [out])


def lower_expand(ctx: Lowering, node: Node) -> None:
    """Expand → BROADCAST_TO when the output shape is static; with a dynamic dim (which only
    the input can bring) → ADD of zeros shaped like the output with that dim 1 (broadcasting)."""
    shape = ctx.shape(node.outputs[0])
    rank = len(shape)
    source = _expand_source(ctx, node, rank)
    out = ctx.output(node.outputs[0], source.layout, False)
    if None not in shape:
        dims = ctx.shape_const(f"{node.name}/shape", list(source.layout.shape(shape)))
        ctx.emit("BROADCAST_TO", [source.tensor, dims], [out])
        return
    zeros = np.zeros([1 if d is None else int(d) for d in shape], dtype=source.dtype)
    zeros = ctx.const(f"{node.name}/zeros", source.layout.apply(zeros), source.dtype)
    op = "LOGICAL_OR" if source.dtype == "bool" else "ADD"
    ctx.emit(op, [source.tensor, zeros], [out])


def _expand_source(ctx: Lowering, node: Node, rank: int) -> Value:
    """Expand's input at the output's rank: a constant reshaped, or the runtime value."""
    if ctx.graph.is_const(node.inputs[0]):
        array = ctx.graph.float_const(node.inputs[0])
        dtype = "float32" if array.dtype.kind == "f" else str(array.dtype)
        array = array.reshape((1,) * (rank - array.ndim) + array.shape).astype(dtype)
        index = ctx.const(f"{node.name}/data", array, dtype)
        return Value(index, PLAIN, dtype, None, array.shape)
    value = ctx.values[node.inputs[0]]
    if len(value.shape) != rank or value.layout.cols is not None:
        return ctx.get(node.inputs[0], PLAIN, "float32")
    return ctx.get(node.inputs[0], value.layout, "float32")


def lower_depth_space(ctx: Lowering, node: Node) -> None:
    """DepthToSpace (DCR; CRD via a channel GATHER first) / SpaceToDepth on NHWC."""
    block = int(node.attrs["blocksize"])
    quantized = ctx.quantized(node)
    x = ctx.get(node.inputs[0], CHANNELS_LAST, "int8" if quantized else "float32")
    mode = node.attrs.get("mode", b"DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if node.op_type == "DepthToSpace" and mode == "CRD":
        channels = x.shape[1]
        depth = channels // (block * block)
        # TFLite reads channel (i·b + j)·C + c where CRD stores c·b² + i·b + j.
        order = np.arange(channels).reshape(depth, block * block).T.reshape(-1)
        gathered = ctx.new_value(f"{node.name}/dcr", x.shape, x.layout, x.dtype, x.quant)
        index = ctx.const(f"{node.name}/order", order.astype(np.int32), "int32")
        ctx.emit("GATHER", [x.tensor, index], [gathered], ctx.options_of("GatherOptions", axis=3))
        x = gathered
    op = "DEPTH_TO_SPACE" if node.op_type == "DepthToSpace" else "SPACE_TO_DEPTH"
    kind = "DepthToSpaceOptions" if op == "DEPTH_TO_SPACE" else "SpaceToDepthOptions"
    out = ctx.output(node.outputs[0], CHANNELS_LAST, quantized, x.quant)
    ctx.emit(op, [x.tensor], [out], ctx.options_of(kind, blockSize=block))
