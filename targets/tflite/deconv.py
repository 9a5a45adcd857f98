"""ConvTranspose → TRANSPOSE_CONV: groups as one op per group, dilation as a zero-dilated kernel.

TFLite's TRANSPOSE_CONV has neither groups nor dilation. A dilated kernel is the kernel with
d − 1 zero taps between its taps (exact); a grouped one is a SPLIT of the input channels, one
TRANSPOSE_CONV per group and a CONCATENATION. Pads are cut off the VALID output with a
STRIDED_SLICE; output_padding is part of the ONNX output shape TRANSPOSE_CONV is asked for
(its extra rows get only the bias, as in ONNX).
"""

from __future__ import annotations

import numpy as np

from targets.tflite import legalize
from targets.tflite.conv import CHANNELS_LAST, _bias, _check_4d
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import PLAIN
from targets.tflite.weights import bias_tensor, float_source, weight_tensor


def lower_conv_transpose(ctx: Lowering, node: Node) -> None:
    """ConvTranspose (any group, dilation, pads, output_padding) → TRANSPOSE_CONV."""
    _check_4d(ctx, node)
    group = int(node.attrs.get("group", 1))
    weight = _dilated(ctx.graph.float_const(node.inputs[1]), node)  # [C_in, C_out/g, kh, kw]
    pads = _pads(ctx, node, weight.shape[2:])
    quantized = ctx.quantized(node)
    x = ctx.get(node.inputs[0], CHANNELS_LAST, "int8" if quantized else "float32")
    out_shape = ctx.shape(node.outputs[0])
    full = (out_shape[2] + pads[0] + pads[2], out_shape[3] + pads[1] + pads[3])
    raw = f"{node.name}/full" if any(pads) else node.outputs[0]
    _declare(ctx, node, raw, out_shape[1], full)
    per_group = weight.shape[1]
    bias = _bias(ctx, node, per_group * group)
    parts = _split_channels(ctx, node, x, group)
    outs = []
    for g, part in enumerate(parts):
        name = raw if group == 1 else f"{node.name}/group{g}"
        if group > 1:
            _declare(ctx, node, name, per_group, full)
        block = weight[g * len(weight) // group : (g + 1) * len(weight) // group]
        filt = np.ascontiguousarray(block.transpose(1, 2, 3, 0))  # OHWI
        group_bias = bias[g * per_group : (g + 1) * per_group]
        outs.append(_transpose_conv(ctx, node, part, filt, group_bias, name, full, quantized))
    result = outs[0] if group == 1 else _concat(ctx, raw, outs, quantized)
    if any(pads):
        _crop(ctx, node, result, pads)


def _pads(ctx: Lowering, node: Node, kernel: tuple) -> list[int]:
    """[top, left, bottom, right] crop of the full output: the pads attribute, or with
    auto_pad SAME_* / output_shape the total the inferred output leaves, split as ONNX says
    (SAME_UPPER: the odd one at the end)."""
    auto_pad = node.attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER") and "output_shape" not in node.attrs:
        return list(node.attrs.get("pads", [0, 0, 0, 0]))
    size, out = ctx.shape(node.inputs[0])[2:], ctx.shape(node.outputs[0])[2:]
    strides = list(node.attrs.get("strides", [1, 1]))
    extra = list(node.attrs.get("output_padding", [0, 0]))
    begin, end = [], []
    for axis in range(2):
        full = strides[axis] * (size[axis] - 1) + extra[axis] + kernel[axis]
        total = max(full - out[axis], 0)  # a larger output_shape grows like output_padding
        small, large = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else large)
        end.append(large if auto_pad == "SAME_UPPER" else small)
    return begin + end


def _dilated(weight: np.ndarray, node: Node) -> np.ndarray:
    """The kernel with dilation − 1 zero taps between taps (identity for dilation 1)."""
    dh, dw = (int(d) for d in node.attrs.get("dilations", [1, 1]))
    if (dh, dw) == (1, 1):
        return weight
    cin, cout, kh, kw = weight.shape
    spread = np.zeros((cin, cout, (kh - 1) * dh + 1, (kw - 1) * dw + 1), weight.dtype)
    spread[:, :, ::dh, ::dw] = weight
    return spread


def _declare(ctx: Lowering, node: Node, name: str, channels: int, full: tuple) -> None:
    """Shape and (int8) params of an intermediate output before cropping/concatenating."""
    ctx.graph.shapes[name] = (ctx.shape(node.outputs[0])[0], channels, *full)
    ctx.graph.act_quant.setdefault(name, ctx.graph.act_quant.get(node.outputs[0]))


def _split_channels(ctx: Lowering, node: Node, x: Value, group: int) -> list[Value]:
    """The input's channel groups (SPLIT on NHWC's last axis; params kept)."""
    if group == 1:
        return [x]
    shape = (x.shape[0], x.shape[1] // group, *x.shape[2:])
    outs = [
        ctx.new_value(f"{node.name}/in{g}", shape, x.layout, x.dtype, x.quant) for g in range(group)
    ]
    axis = ctx.const(f"{node.name}/split_axis", np.array(3, np.int32), "int32")
    ctx.emit("SPLIT", [axis, x.tensor], outs, ctx.options_of("SplitOptions", numSplits=group))
    return outs


def _transpose_conv(
    ctx: Lowering,
    node: Node,
    x: Value,
    filt: np.ndarray,
    bias: np.ndarray,
    name: str,
    full: tuple,
    quantized: bool,
) -> Value:
    """One TRANSPOSE_CONV (VALID) writing the un-cropped output `name`."""
    tag = name.replace("/", "_")
    w_index, w_quant = weight_tensor(
        ctx, f"{node.name}/{tag}/filter", filt, 0, float_source(node, quantized, 1)
    )
    bias_name = float_source(node, quantized, 2)
    b_index = bias_tensor(ctx, f"{node.name}/{tag}/bias", bias, x.quant, w_quant, bias_name)
    out = ctx.output(name, CHANNELS_LAST, quantized)
    sizes = _output_shape(ctx, f"{node.name}/{tag}", x, [*full, filt.shape[0]], x.shape[0])
    strides = list(node.attrs.get("strides", [1, 1]))
    options = ctx.options_of(
        "TransposeConvOptions",
        padding=legalize.schema.Padding.VALID,
        strideH=strides[0],
        strideW=strides[1],
    )
    ctx.emit("TRANSPOSE_CONV", [sizes, w_index, x.tensor, b_index], [out], options, 3)
    return out


def _concat(ctx: Lowering, name: str, parts: list[Value], quantized: bool) -> Value:
    out = ctx.output(name, CHANNELS_LAST, quantized)
    options = ctx.options_of("ConcatenationOptions", axis=3)
    ctx.emit("CONCATENATION", [p.tensor for p in parts], [out], options)
    return out


def _output_shape(ctx: Lowering, tag: str, x: Value, hwc: list[int], batch: int | None) -> int:
    """TRANSPOSE_CONV's output-shape input; with a dynamic batch it is read from x at run time."""
    name = f"{tag}/output_shape"
    if batch is not None:
        return ctx.shape_const(name, [batch, *hwc])
    shape = ctx.new_value(f"{name}/input", (4,), PLAIN, "int32", None)
    ctx.emit("SHAPE", [x.tensor], [shape], ctx.options_of("ShapeOptions", outType=2))
    first = ctx.new_value(f"{name}/batch", (1,), PLAIN, "int32", None)
    slice_inputs = [
        shape.tensor,
        *(ctx.shape_const(f"{name}/{k}", [v]) for k, v in (("b", 0), ("e", 1), ("s", 1))),
    ]
    ctx.emit("STRIDED_SLICE", slice_inputs, [first], ctx.options_of("StridedSliceOptions"))
    out = ctx.new_value(name, (4,), PLAIN, "int32", None)
    rest = ctx.shape_const(f"{name}/hwc", hwc)
    ctx.emit("CONCATENATION", [first.tensor, rest], [out], ctx.options_of("ConcatenationOptions"))
    return out.tensor


def _crop(ctx: Lowering, node: Node, full: Value, pads: list[int]) -> None:
    """Cut ConvTranspose's pads off the full output with a STRIDED_SLICE."""
    height, width = full.shape[2] - pads[0] - pads[2], full.shape[3] - pads[1] - pads[3]
    out = ctx.output(node.outputs[0], CHANNELS_LAST, full.quant is not None, full.quant)
    begin = ctx.shape_const(f"{node.name}/begin", [0, pads[0], pads[1], 0])
    end = ctx.shape_const(f"{node.name}/end", [0, pads[0] + height, pads[1] + width, 0])
    steps = ctx.shape_const(f"{node.name}/strides", [1, 1, 1, 1])
    options = ctx.options_of("StridedSliceOptions", beginMask=0b1001, endMask=0b1001)
    ctx.emit("STRIDED_SLICE", [full.tensor, begin, end, steps], [out], options)
