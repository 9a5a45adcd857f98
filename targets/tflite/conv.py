"""Lowering rules for convolutions and pooling (NHWC, explicit PAD where SAME does not fit)."""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite import legalize
from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import NHWC, Layout
from targets.tflite.padding import auto_pads, pool_divisor, resolve_padding
from targets.tflite.weights import bias_tensor, const_operand, float_source, weight_tensor
from targets.tflite.writer import QuantParams

CHANNELS_LAST = Layout(NHWC)


def _spatial(
    ctx: Lowering, node: Node, kernel: tuple[int, int]
) -> tuple[list[int], list[int], list[int]]:
    """strides, dilations and explicit [top, left, bottom, right] pads (auto_pad resolved)."""
    strides = list(node.attrs.get("strides", [1, 1]))
    dilations = list(node.attrs.get("dilations", [1, 1]))
    pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
    auto_pad = node.attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        size = ctx.shape(node.inputs[0])[2:]
        if None in size:
            raise UnsupportedOp(
                f"{node.op_type} '{node.name}': auto_pad {auto_pad} over a dynamic spatial size; "
                "fix it with --input-shape."
            )
        pads = auto_pads(size, kernel, strides, dilations, auto_pad == "SAME_LOWER")
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    return strides, dilations, pads


def _check_4d(ctx: Lowering, node: Node) -> None:
    if len(ctx.shape(node.inputs[0])) != 4:
        raise UnsupportedOp(
            f"{node.op_type} '{node.name}' is not 2-D (input rank {len(ctx.shape(node.inputs[0]))}); "
            "the tflite target lowers 2-D convolutions and pools."
        )


def _padded_input(ctx: Lowering, value: Value, node: Node, pads: list[int], fill: str) -> Value:
    """Apply explicit [top, left, bottom, right] pads with PAD (zeros) or PADV2 (lowest value)."""
    name = f"{node.name}/pad"
    paddings = np.array([[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]], dtype=np.int32)
    shape = list(value.shape)
    for axis, extra in ((2, pads[0] + pads[2]), (3, pads[1] + pads[3])):
        shape[axis] = None if shape[axis] is None else shape[axis] + extra
    out = ctx.new_value(name, tuple(shape), value.layout, value.dtype, value.quant)
    inputs = [value.tensor, ctx.const(f"{name}/paddings", paddings, "int32")]
    if fill == "zero":
        ctx.emit("PAD", inputs, [out])
        return out
    lowest = np.array(-128 if value.dtype == "int8" else -np.inf, dtype=value.dtype)
    inputs.append(ctx.const(f"{name}/value", lowest.reshape(()), value.dtype, value.quant))
    ctx.emit("PADV2", inputs, [out])
    return out


def lower_conv(ctx: Lowering, node: Node) -> None:
    """Conv → CONV_2D / DEPTHWISE_CONV_2D (grouped: CONV_2D v6) with fused Relu/Clip."""
    _check_4d(ctx, node)
    if not ctx.graph.is_const(node.inputs[1]):
        raise UnsupportedOp(
            f"Conv '{node.name}' has runtime weights; tflite needs constant filters."
        )
    weight = ctx.graph.float_const(node.inputs[1])
    out_ch, in_per_group, kh, kw = weight.shape
    group = int(node.attrs.get("group", 1))
    strides, dilations, pads = _spatial(ctx, node, (kh, kw))
    quantized = ctx.quantized(node)
    act, out_name = ctx.fuse_activation(node)
    x = ctx.get(node.inputs[0], CHANNELS_LAST, "int8" if quantized else "float32")
    padding, explicit = resolve_padding(x.shape[2:], (kh, kw), strides, dilations, pads)
    if explicit:
        x = _padded_input(ctx, x, node, explicit, "zero")
    filt, axis, op, options = _filter_and_options(
        ctx, weight, group, strides, dilations, padding, act
    )
    w_index, w_quant = weight_tensor(
        ctx, f"{node.name}/filter", filt, axis, float_source(node, quantized, 1)
    )
    bias_name = float_source(node, quantized, 2)
    b_index = bias_tensor(
        ctx, f"{node.name}/bias", _bias(ctx, node, out_ch), x.quant, w_quant, bias_name
    )
    out = ctx.output(out_name, CHANNELS_LAST, quantized)
    version = _conv_version(op, x, w_quant, group, dilations)
    ctx.emit(op, [x.tensor, w_index, b_index], [out], options, version)


def _bias(ctx: Lowering, node: Node, channels: int) -> np.ndarray:
    """The float bias input, or zeros (TFLite kernels are given an explicit bias)."""
    if len(node.inputs) > 2 and node.inputs[2]:
        return ctx.graph.float_const(node.inputs[2])
    return np.zeros(channels, np.float32)


def _filter_and_options(
    ctx: Lowering,
    weight: np.ndarray,
    group: int,
    strides: list[int],
    dilations: list[int],
    padding: int,
    act: int,
) -> tuple[np.ndarray, int, str, tuple[int, object]]:
    """(filter in TFLite layout, its channel axis, op name, options) for a Conv weight."""
    out_ch, in_per_group = weight.shape[:2]
    common = {
        "padding": padding,
        "strideH": strides[0],
        "strideW": strides[1],
        "fusedActivationFunction": act,
        "dilationHFactor": dilations[0],
        "dilationWFactor": dilations[1],
    }
    if group > 1 and in_per_group == 1:  # depthwise, channel multiplier out_ch / group
        filt = np.ascontiguousarray(weight.transpose(1, 2, 3, 0))  # [1, kH, kW, C·M]
        options = ctx.options_of(
            "DepthwiseConv2DOptions", depthMultiplier=out_ch // group, **common
        )
        return filt, 3, "DEPTHWISE_CONV_2D", options
    filt = np.ascontiguousarray(weight.transpose(0, 2, 3, 1))  # OHWI (grouped: I per group)
    return filt, 0, "CONV_2D", ctx.options_of("Conv2DOptions", **common)


def _conv_version(
    op: str, x: Value, w_quant: QuantParams | None, group: int, dilations: list[int]
) -> int:
    """op_version.cc for CONV_2D / DEPTHWISE_CONV_2D."""
    depthwise = op == "DEPTHWISE_CONV_2D"
    if group > 1 and not depthwise:
        return 6
    if x.dtype == "int8":
        return 3
    if w_quant is not None:
        return legalize.HYBRID_VERSIONS[op][1 if len(w_quant.scale) > 1 else 0]
    return 2 if depthwise and dilations != [1, 1] else 1


def lower_pool(ctx: Lowering, node: Node) -> None:
    """MaxPool/AveragePool → MAX_POOL_2D/AVERAGE_POOL_2D (pads, ceil_mode, count_include_pad)."""
    _check_4d(ctx, node)
    kernel = tuple(node.attrs["kernel_shape"])
    strides, dilations, pads = _spatial(ctx, node, kernel)
    if dilations != [1, 1]:
        raise UnsupportedOp(
            f"{node.op_type} '{node.name}': dilated pooling is not lowered to tflite."
        )
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedOp(
            f"MaxPool '{node.name}': the Indices output (argmax, storage_order) is not lowered "
            "to tflite."
        )
    is_max = node.op_type == "MaxPool"
    quantized = ctx.quantized(node)
    act, out_name = ctx.fuse_activation(node)
    x = ctx.get(node.inputs[0], CHANNELS_LAST, "int8" if quantized else "float32")
    out_hw = ctx.shape(node.outputs[0])[2:]
    ends = _ceil_extra(x.shape[2:], kernel, strides, pads, out_hw)
    include_pad = bool(node.attrs.get("count_include_pad", 0))
    prefer_same = is_max or not include_pad
    padding, explicit = resolve_padding(x.shape[2:], kernel, strides, [1, 1], ends, prefer_same)
    divisor = None
    if not is_max:
        divisor = pool_divisor(x.shape[2:], kernel, strides, pads, ends, include_pad, padding)
    if explicit:
        x = _padded_input(ctx, x, node, explicit, "lowest" if is_max else "zero")
    op = "MAX_POOL_2D" if is_max else "AVERAGE_POOL_2D"
    options = ctx.options_of(
        "Pool2DOptions",
        padding=padding,
        strideH=strides[0],
        strideW=strides[1],
        filterHeight=kernel[0],
        filterWidth=kernel[1],
        fusedActivationFunction=act if divisor is None else legalize.NO_ACTIVATION,
    )
    if divisor is None:
        out = ctx.output(
            out_name, CHANNELS_LAST, quantized, legalize.output_quant(op, x.quant, None)
        )
        ctx.emit(op, [x.tensor], [out], options)
        return
    _average_with_divisor(ctx, node, x, op, options, divisor, out_name, quantized, act)


def _average_with_divisor(
    ctx: Lowering,
    node: Node,
    x: Value,
    op: str,
    options: tuple[int, object],
    divisor: np.ndarray,
    out_name: str,
    quantized: bool,
    act: int,
) -> None:
    """AVERAGE over a padded window, then MUL by k·k/divisor where ONNX divides by fewer."""
    name = f"{node.name}/sum_avg"
    ctx.graph.shapes[name] = ctx.shape(node.outputs[0])
    mid = ctx.output(name, CHANNELS_LAST, quantized, x.quant)
    ctx.emit(op, [x.tensor], [mid], options)
    scale = divisor.reshape(1, divisor.shape[0], divisor.shape[1], 1).astype(np.float32)
    ctx.values[name] = mid
    factor = const_operand(ctx, f"{node.name}/divisor", scale.transpose(0, 3, 1, 2), quantized, mid)
    out = ctx.output(out_name, CHANNELS_LAST, quantized)
    ctx.emit(
        "MUL",
        [mid.tensor, factor],
        [out],
        ctx.options_of("MulOptions", fusedActivationFunction=act),
    )


def _ceil_extra(
    size: tuple, kernel: tuple, strides: list[int], pads: list[int], out_hw: tuple
) -> list[int]:
    """pads grown at the end so VALID pooling yields ONNX's (ceil_mode) output size."""
    ends = list(pads)
    for axis in range(2):
        if size[axis] is None or out_hw[axis] is None:
            continue
        need = (
            (out_hw[axis] - 1) * strides[axis]
            + kernel[axis]
            - size[axis]
            - pads[axis]
            - pads[axis + 2]
        )
        ends[axis + 2] += max(need, 0)
    return ends


def lower_global_pool(ctx: Lowering, node: Node) -> None:
    """GlobalAveragePool/GlobalMaxPool → MEAN/REDUCE_MAX over H, W with kept dims."""
    _check_4d(ctx, node)
    quantized = ctx.quantized(node)
    x = ctx.get(node.inputs[0], CHANNELS_LAST, "int8" if quantized else "float32")
    op = "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX"
    out = ctx.output(node.outputs[0], CHANNELS_LAST, quantized)
    axes = ctx.shape_const(f"{node.name}/axes", [1, 2])
    ctx.emit(op, [x.tensor, axes], [out], ctx.options_of("ReducerOptions", keepDims=True))
