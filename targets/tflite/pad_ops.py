"""Pad in every ONNX mode: constant (PAD, or PADV2 for a non-zero value), reflect (MIRROR_PAD),
edge and wrap (a GATHER of clamped / wrapped indices per padded axis: TFLite has no
replicate or circular pad), with negative pads (crops) and the opset-18 `axes` input.
"""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node

MODES = ("constant", "reflect", "edge", "wrap")


def _const_input(ctx: Lowering, node: Node, index: int, what: str) -> np.ndarray | None:
    """A constant input (None when absent); a runtime one is refused by name."""
    name = node.inputs[index] if len(node.inputs) > index else ""
    if not name:
        return None
    if not ctx.graph.is_const(name):
        raise UnsupportedOp(f"Pad '{node.name}' has runtime {what}; tflite needs constants.")
    return ctx.graph.float_const(name)


def _pairs(ctx: Lowering, node: Node, rank: int) -> np.ndarray:
    """ONNX pads as [rank, 2] (begin, end) over every axis (axes input expanded)."""
    pads = _const_input(ctx, node, 1, "pads")
    pads = np.asarray(node.attrs.get("pads", []) if pads is None else pads, np.int64).reshape(-1)
    axes = _const_input(ctx, node, 3, "axes")
    axes = np.arange(rank) if axes is None else np.asarray(axes, np.int64).reshape(-1) % rank
    pairs = np.zeros((rank, 2), np.int64)
    pairs[axes, 0], pairs[axes, 1] = pads[: len(axes)], pads[len(axes) :]
    return pairs


def lower_pad(ctx: Lowering, node: Node) -> None:
    """Pad (all modes, negative pads, axes) in the input's layout."""
    mode = node.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in MODES:
        raise UnsupportedOp(f"Pad '{node.name}' uses mode '{mode}'; tflite lowers {MODES}.")
    shape = ctx.shape(node.inputs[0])
    pairs = _pairs(ctx, node, len(shape))
    fill = _const_input(ctx, node, 2, "constant_value")
    fill = float(node.attrs.get("value", 0.0) if fill is None else fill.reshape(-1)[0])
    if mode in ("edge", "wrap"):
        _gather_pad(ctx, node, pairs, mode)
        return
    if (pairs < 0).any() and mode == "reflect":
        raise UnsupportedOp(f"Pad '{node.name}' crops (negative pads) in reflect mode.")
    if mode == "reflect" and any(
        d is None or pairs[a].max() >= d for a, d in enumerate(shape) if pairs[a].any()
    ):
        raise UnsupportedOp(
            f"Pad '{node.name}' reflects by as much as the axis length (or over a dynamic axis)."
        )
    quantized = ctx.quantized(node) and fill == 0.0
    layout = ctx.preferred_layout(node.inputs[0])
    x = ctx.get(node.inputs[0], layout, "int8" if quantized else "float32")
    if (pairs < 0).any():
        x = _crop(ctx, node, x, np.minimum(pairs, 0))
        pairs = np.maximum(pairs, 0)
    laid = pairs if layout.perm is None else pairs[list(layout.perm)]
    out = ctx.output(node.outputs[0], layout, quantized, x.quant)
    inputs = [x.tensor, ctx.const(f"{node.name}/paddings", laid.astype(np.int32), "int32")]
    if mode == "reflect":
        ctx.emit("MIRROR_PAD", inputs, [out], ctx.options_of("MirrorPadOptions", mode=0))
    elif fill != 0.0:
        inputs.append(ctx.const(f"{node.name}/value", np.array(fill, np.float32), "float32"))
        ctx.emit("PADV2", inputs, [out])
    else:
        ctx.emit("PAD", inputs, [out])


def _crop(ctx: Lowering, node: Node, x: Value, crops: np.ndarray) -> Value:
    """x with −crops[a] elements cut off each end of axis a (STRIDED_SLICE)."""
    rank, shape = len(x.shape), list(x.shape)
    begin, end = [0] * rank, [0] * rank
    for axis, (head, tail) in enumerate(-crops):
        if shape[axis] is None:
            raise UnsupportedOp(f"Pad '{node.name}' crops a dynamic axis.")
        t = x.layout.axis(axis, rank)
        begin[t], end[t] = int(head), int(shape[axis] - tail)
        shape[axis] = int(shape[axis] - head - tail)
    inputs = [x.tensor] + [
        ctx.shape_const(f"{node.name}/crop_{k}", v)
        for k, v in (("begin", begin), ("end", end), ("strides", [1] * rank))
    ]
    kept = [t for t in range(rank) if begin[t] == 0 and end[t] == 0]
    mask = sum(1 << t for t in kept)
    options = ctx.options_of("StridedSliceOptions", endMask=mask)
    out = ctx.new_value(f"{node.name}/cropped", tuple(shape), x.layout, x.dtype, x.quant)
    ctx.emit("STRIDED_SLICE", inputs, [out], options)
    return out


def _gather_pad(ctx: Lowering, node: Node, pairs: np.ndarray, mode: str) -> None:
    """edge (clamped indices) / wrap (indices modulo the length): one GATHER per padded axis."""
    layout = ctx.preferred_layout(node.inputs[0])
    quantized = ctx.quantized(node)
    current = ctx.get(node.inputs[0], layout, "int8" if quantized else "float32")
    padded = [a for a in range(len(pairs)) if pairs[a].any()]
    if not padded:
        ctx.values[node.outputs[0]] = current
        return
    rank, shape = len(current.shape), list(current.shape)
    for step, axis in enumerate(padded):
        size = shape[axis]
        if size is None:
            raise UnsupportedOp(f"Pad '{node.name}' ({mode}) pads a dynamic axis.")
        head, tail = (int(p) for p in pairs[axis])
        reads = np.arange(-head, size + tail)
        reads = np.clip(reads, 0, size - 1) if mode == "edge" else reads % size
        shape[axis] = len(reads)
        index = ctx.const(f"{node.name}/reads{axis}", reads.astype(np.int32), "int32")
        options = ctx.options_of("GatherOptions", axis=layout.axis(axis, rank))
        if step == len(padded) - 1:
            out = ctx.output(node.outputs[0], layout, quantized, current.quant)
        else:
            name = f"{node.name}/axis{axis}"
            out = ctx.new_value(name, tuple(shape), layout, current.dtype, current.quant)
        ctx.emit("GATHER", [current.tensor, index], [out], options)
        current = out
