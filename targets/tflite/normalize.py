"""Normalizations TFLite has no single op for (LayerNorm, InstanceNorm, standalone BatchNorm) and LRN.

LayerNormalization and InstanceNormalization decompose into MEAN, SQUARED_DIFFERENCE, RSQRT and
affine MUL/ADD over the normalized axes, in float (an island in int8 models); BatchNormalization
left after a ReLU (nothing to fold it into) is one MUL and one ADD.
"""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import NHWC, Layout


def _laid_out(ctx: Lowering, tag: str, array: np.ndarray, like: Value) -> int:
    """A float constant broadcast against `like` (trailing-aligned), in like's layout."""
    rank = len(like.shape)
    array = array.reshape((1,) * (rank - array.ndim) + array.shape).astype(np.float32)
    return ctx.const(tag, like.layout.apply(array), "float32")


def _channel_const(ctx: Lowering, tag: str, array: np.ndarray, like: Value) -> int:
    """A per-channel [C] constant shaped [C, 1, ...] against an N, C, ... tensor."""
    shaped = array.reshape((-1,) + (1,) * (len(like.shape) - 2))
    return _laid_out(ctx, tag, shaped, like)


def _normalized(
    ctx: Lowering, node: Node, axes: tuple[int, ...], epsilon: float, layout: Layout
) -> tuple[Value, Value]:
    """(x − mean) / sqrt(var + eps) over ONNX axes; returns (input value, normalized value)."""
    x = ctx.get(node.inputs[0], layout, "float32")
    rank, tag = len(x.shape), node.name
    mean_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    reduce = [ctx.shape_const(f"{tag}/axes", sorted(layout.axis(a, rank) for a in axes))]
    keep = ctx.options_of("ReducerOptions", keepDims=True)
    mean = ctx.step("MEAN", [x.tensor, *reduce], f"{tag}/mean", x, keep, shape=mean_shape)
    centered = ctx.step("SUB", [x.tensor, mean.tensor], f"{tag}/centered", x)
    square = ctx.step("SQUARE", [centered.tensor], f"{tag}/square", x)
    var = ctx.step("MEAN", [square.tensor, *reduce], f"{tag}/var", x, keep, shape=mean_shape)
    var = ctx.step("ADD", [var.tensor, ctx.scalar(f"{tag}/eps", epsilon)], f"{tag}/vareps", var)
    inv = ctx.step("RSQRT", [var.tensor], f"{tag}/rsqrt", var)
    for index, value in ((1, mean), (2, inv)):  # LayerNormalization's Mean and InvStdDev
        if len(node.outputs) > index and node.outputs[index]:
            ctx.values[node.outputs[index]] = value
    return x, ctx.step("MUL", [centered.tensor, inv.tensor], f"{tag}/normed", x)


def _affine(ctx: Lowering, node: Node, normed: Value, scale: int, bias: int | None) -> None:
    """y = normed · scale (+ bias), the last op writing the node's output."""
    name = node.outputs[0]
    if bias is None:
        out = ctx.output(name, normed.layout, False)
        ctx.emit("MUL", [normed.tensor, scale], [out])
        return
    scaled = ctx.step("MUL", [normed.tensor, scale], f"{node.name}/scaled", normed)
    out = ctx.output(name, normed.layout, False)
    ctx.emit("ADD", [scaled.tensor, bias], [out])


def lower_layer_norm(ctx: Lowering, node: Node) -> None:
    """LayerNormalization over axes [axis, rank) in the input's layout."""
    rank = len(ctx.shape(node.inputs[0]))
    axis = int(node.attrs.get("axis", -1)) % rank
    layout = ctx.preferred_layout(node.inputs[0])
    x, normed = _normalized(
        ctx, node, tuple(range(axis, rank)), float(node.attrs.get("epsilon", 1e-5)), layout
    )
    scale = _laid_out(ctx, f"{node.name}/gamma", ctx.graph.float_const(node.inputs[1]), x)
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = _laid_out(ctx, f"{node.name}/beta", ctx.graph.float_const(node.inputs[2]), x)
    _affine(ctx, node, normed, scale, bias)


def lower_instance_norm(ctx: Lowering, node: Node) -> None:
    """InstanceNormalization: per-sample, per-channel normalization over the spatial axes."""
    rank = len(ctx.shape(node.inputs[0]))
    layout = ctx.preferred_layout(node.inputs[0])
    layout = Layout(NHWC) if rank == 4 and layout.is_plain else layout
    x, normed = _normalized(
        ctx, node, tuple(range(2, rank)), float(node.attrs.get("epsilon", 1e-5)), layout
    )
    scale = _channel_const(ctx, f"{node.name}/scale", ctx.graph.float_const(node.inputs[1]), x)
    bias = _channel_const(ctx, f"{node.name}/bias", ctx.graph.float_const(node.inputs[2]), x)
    _affine(ctx, node, normed, scale, bias)


def lower_batch_norm(ctx: Lowering, node: Node) -> None:
    """Inference BatchNormalization (nothing to fold it into) → MUL + ADD per channel."""
    scale, bias, mean, var = (ctx.graph.float_const(n).astype(np.float64) for n in node.inputs[1:5])
    factor = scale / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
    shift = bias - mean * factor
    x = ctx.get(node.inputs[0], ctx.preferred_layout(node.inputs[0]), "float32")
    mul = _channel_const(ctx, f"{node.name}/factor", factor, x)
    add = _channel_const(ctx, f"{node.name}/shift", shift, x)
    scaled = ctx.step("MUL", [x.tensor, mul], f"{node.name}/scaled", x)
    out = ctx.output(node.outputs[0], x.layout, False)
    ctx.emit("ADD", [scaled.tensor, add], [out])


def lower_lrn(ctx: Lowering, node: Node) -> None:
    """LRN → LOCAL_RESPONSE_NORMALIZATION on NHWC (odd size; TFLite's alpha is per element)."""
    size = int(node.attrs["size"])
    if size % 2 == 0 or len(ctx.shape(node.inputs[0])) != 4:
        raise UnsupportedOp(
            f"LRN '{node.name}' has an even size or is not 4-D; tflite's window is symmetric."
        )
    x = ctx.get(node.inputs[0], Layout(NHWC), "float32")
    out = ctx.output(node.outputs[0], x.layout, False)
    options = ctx.options_of(
        "LocalResponseNormalizationOptions",
        radius=(size - 1) // 2,
        bias=float(node.attrs.get("bias", 1.0)),
        alpha=float(node.attrs.get("alpha", 1e-4)) / size,
        beta=float(node.attrs.get("beta", 0.75)),
    )
    ctx.emit("LOCAL_RESPONSE_NORMALIZATION", [x.tensor], [out], options)
