"""Resize (4-D, spatial axes) → RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR on NHWC.

Linear modes map one to one onto TFLite's align_corners / half_pixel_centers flags. Nearest
is decided per graph: ONNX's source pixel for every output pixel (its coordinate transform,
scale and nearest_mode) is computed and compared with what each of TFLite's three nearest
variants reads; the first variant reading the same pixels everywhere is used, else the node
is refused (e.g. ONNX's default half_pixel + round_prefer_floor ties at an even downscale).
"""

from __future__ import annotations

import numpy as np

from foundation.errors import UnsupportedOp
from targets.tflite import legalize
from targets.tflite.emit import Lowering
from targets.tflite.graph import Node
from targets.tflite.layout import NHWC, Layout

CHANNELS_LAST = Layout(NHWC)
LINEAR = {
    "half_pixel": (False, True),
    "pytorch_half_pixel": (False, True),
    "align_corners": (True, False),
    "asymmetric": (False, False),
}
# TFLite nearest variants as (align_corners, half_pixel_centers).
NEAREST_VARIANTS = ((False, False), (False, True), (True, False))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _onnx_nearest(size: int, out: int, scale: float, coords: str, rounding: str) -> np.ndarray:
    """The input pixel ONNX reads for each output pixel of one axis."""
    x = np.arange(out, dtype=np.float64)
    origin = {
        "half_pixel": (x + 0.5) / scale - 0.5,
        "pytorch_half_pixel": (x + 0.5) / scale - 0.5 if out > 1 else np.zeros(out),
        "align_corners": x * (size - 1) / (out - 1) if out > 1 else np.zeros(out),
        "asymmetric": x / scale,
        "tf_half_pixel_for_nn": (x + 0.5) / scale,
    }.get(coords)
    if origin is None:
        return None
    frac = origin - np.floor(origin)
    tie = np.isclose(frac, 0.5)
    picked = {
        "round_prefer_floor": np.where(tie, np.floor(origin), np.round(origin)),
        "round_prefer_ceil": np.where(tie, np.ceil(origin), np.round(origin)),
        "floor": np.floor(origin),
        "ceil": np.ceil(origin),
    }[rounding]
    return np.clip(picked, 0, size - 1).astype(np.int64)


def _tflite_nearest(size: int, out: int, align: bool, half: bool) -> np.ndarray:
    """The input pixel TFLite's RESIZE_NEAREST_NEIGHBOR reads (reference kernel)."""
    x = np.arange(out, dtype=np.float64)
    scale = (size - 1) / (out - 1) if align and out > 1 else size / out
    position = (x + (0.5 if half else 0.0)) * scale
    index = np.floor(position + 0.5) if align else np.floor(position)
    return np.clip(index, 0, size - 1).astype(np.int64)


def _scales(ctx: Lowering, node: Node, size: tuple, out: tuple) -> list[float]:
    """Per spatial axis the scale ONNX uses: the scales input, else out / in."""
    name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else ""
    given = ctx.graph.float_const(name).reshape(-1) if name and ctx.graph.is_const(name) else None
    if given is not None and len(given) == 4:
        return [float(given[a]) for a in (2, 3)]
    return [out[a] / size[a] for a in (2, 3)]


def _flags(ctx: Lowering, node: Node) -> tuple[str, bool, bool]:
    """(TFLite op, align_corners, half_pixel_centers) reading the same pixels as ONNX."""
    mode = _text(node.attrs.get("mode", b"nearest"))
    coords = _text(node.attrs.get("coordinate_transformation_mode", b"half_pixel"))
    rounding = _text(node.attrs.get("nearest_mode", b"round_prefer_floor"))
    size, out = ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0])
    if len(size) != 4 or size[:2] != out[:2] or None in size[2:] + out[2:]:
        raise UnsupportedOp(
            f"Resize '{node.name}' is not a static 4-D spatial resize; tflite resizes H and W."
        )
    scales = _scales(ctx, node, size, out)
    if mode == "linear" and coords in LINEAR:
        _check_linear_grid(node, size, out, scales, coords)
        return ("RESIZE_BILINEAR", *LINEAR[coords])
    if mode == "nearest":
        wanted = [_onnx_nearest(size[a], out[a], scales[a - 2], coords, rounding) for a in (2, 3)]
        for align, half in NEAREST_VARIANTS:
            got = [_tflite_nearest(size[a], out[a], align, half) for a in (2, 3)]
            if wanted[0] is not None and all(map(np.array_equal, wanted, got)):
                return "RESIZE_NEAREST_NEIGHBOR", align, half
    raise UnsupportedOp(
        f"Resize '{node.name}' ({mode}, {coords}, {rounding}, {size[2:]}→{out[2:]}) reads "
        "pixels no TFLite resize reads; supported: linear with half_pixel/pytorch_half_pixel/"
        "align_corners/asymmetric, nearest where it matches a TFLite grid."
    )


def _check_linear_grid(node: Node, size: tuple, out: tuple, scales: list, coords: str) -> None:
    """TFLite interpolates with in/out; refuse a scale that is not out/in, or a 1-pixel axis
    under align_corners / pytorch_half_pixel (ONNX reads pixel 0 there)."""
    for axis in (2, 3):
        if abs(scales[axis - 2] - out[axis] / size[axis]) > 1e-6:
            raise UnsupportedOp(
                f"Resize '{node.name}': scale {scales[axis - 2]:g} is not {out[axis]}/"
                f"{size[axis]}; TFLite's resize samples a different grid."
            )
        if out[axis] == 1 and size[axis] > 1 and coords in ("align_corners", "pytorch_half_pixel"):
            raise UnsupportedOp(f"Resize '{node.name}': a 1-pixel output axis under {coords}.")


def lower_resize(ctx: Lowering, node: Node) -> None:
    """Resize → RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR with the flags that match ONNX."""
    op, align, half = _flags(ctx, node)
    quantized = ctx.quantized(node)
    x = ctx.get(node.inputs[0], CHANNELS_LAST, "int8" if quantized else "float32")
    quant = (
        legalize.output_quant(op, x.quant, ctx.graph.act_quant.get(node.outputs[0]))
        if quantized
        else None
    )
    out = ctx.output(node.outputs[0], CHANNELS_LAST, quantized, quant)
    size = ctx.shape_const(f"{node.name}/size", list(ctx.shape(node.outputs[0])[2:]))
    name = (
        "ResizeNearestNeighborOptions"
        if op == "RESIZE_NEAREST_NEIGHBOR"
        else "ResizeBilinearOptions"
    )
    options = ctx.options_of(name, alignCorners=align, halfPixelCenters=half)
    ctx.emit(op, [x.tensor, size], [out], options, 3 if (align or half) else None)
