"""Weight and bias tensors per precision: float32, fp16 + DEQUANTIZE, hybrid int8, full int8."""

from __future__ import annotations

import numpy as np

from targets.tflite.emit import Lowering, Value
from targets.tflite.graph import Node
from targets.tflite.layout import PLAIN
from targets.tflite.writer import QuantParams

INT8_MAX = 127


def quantize_symmetric(array: np.ndarray, axis: int | None) -> tuple[np.ndarray, QuantParams]:
    """Symmetric int8 in [-127, 127], per channel along axis (per tensor when axis is None)."""
    if axis is None:
        peak = np.array([np.abs(array).max()], dtype=np.float64)
        scale = np.maximum(peak, 1e-12) / INT8_MAX
        q = np.round(array / scale[0])
        return np.clip(q, -INT8_MAX, INT8_MAX).astype(np.int8), QuantParams.per_tensor(scale[0], 0)
    moved = np.moveaxis(array.astype(np.float64), axis, 0)
    peak = np.abs(moved.reshape(len(moved), -1)).max(axis=1)
    scale = np.maximum(peak, 1e-12) / INT8_MAX
    q = np.round(moved / scale.reshape([-1] + [1] * (moved.ndim - 1)))
    q = np.moveaxis(np.clip(q, -INT8_MAX, INT8_MAX).astype(np.int8), 0, axis)
    return q, QuantParams(tuple(scale.tolist()), (0,) * len(scale), axis)


def float_source(node: Node, quantized: bool, index: int) -> str | None:
    """The ONNX constant behind input `index` of a node lowered in float (None when the node
    runs int8 or has no such input): its storage then follows the graph (weight_precision)."""
    if quantized or len(node.inputs) <= index or not node.inputs[index]:
        return None
    return node.inputs[index]


def weight_precision(ctx: Lowering, source: str | None) -> str:
    """How ONNX constant `source` is stored: fp16 when the graph stores it so, fp32 when an
    int8 graph left it unquantized (a float block), else the lowering's precision."""
    if source in ctx.graph.half_consts:
        return "fp16"
    if ctx.int8 and source is not None and source not in ctx.graph.const_quant:
        return "fp32"
    return ctx.options.precision


def weight_tensor(
    ctx: Lowering, name: str, float_weight: np.ndarray, quant_axis: int, source: str | None = None
) -> tuple[int, QuantParams | None]:
    """The filter of a conv/FC (already in TFLite layout): index and int8 params if any.

    In int8 mode the weight is the dequantized Q/DQ constant; re-quantizing it symmetric per
    channel gives back onnxruntime's integers (same max-abs scale), on TFLite's channel axis.
    `source` names the ONNX constant, so a float block of an int8 graph keeps float weights.
    """
    precision = weight_precision(ctx, source)
    if precision == "int8" or precision == "dynamic":
        q, params = quantize_symmetric(float_weight, quant_axis)
        return ctx.const(name, q, "int8", params), params
    if precision == "fp16":
        return _fp16_dequantized(ctx, name, float_weight), None
    return ctx.const(name, float_weight.astype(np.float32), "float32"), None


def bias_tensor(
    ctx: Lowering,
    name: str,
    bias: np.ndarray,
    input_quant: QuantParams | None,
    weight_quant: QuantParams | None,
    source: str | None = None,
) -> int:
    """int32 bias at scale s_in·s_w[c] for int8 kernels, float (fp16-stored in fp16 mode) otherwise."""
    if input_quant is not None and weight_quant is not None:
        scale = np.asarray(weight_quant.scale, dtype=np.float64) * input_quant.scale[0]
        q = np.clip(np.round(bias.astype(np.float64) / scale), -(2**31), 2**31 - 1)
        params = QuantParams(tuple(scale.tolist()), (0,) * len(scale), 0)
        return ctx.const(name, q.astype(np.int32), "int32", params)
    if weight_precision(ctx, source) == "fp16":
        return _fp16_dequantized(ctx, name, bias)
    return ctx.const(name, bias.astype(np.float32), "float32")


def _fp16_dequantized(ctx: Lowering, name: str, array: np.ndarray) -> int:
    half = ctx.const(f"{name}/fp16", array.astype(np.float16), "float16")
    out = ctx.new_value(name, array.shape, PLAIN, "float32", None)
    ctx.emit("DEQUANTIZE", [half], [out])
    return out.tensor


def const_operand(ctx: Lowering, name: str, array: np.ndarray, quantized: bool, like: Value) -> int:
    """A constant operand of an elementwise op, laid out like `like`; int8 per-tensor if quantized."""
    rank = len(like.shape)
    array = array.reshape((1,) * (rank - array.ndim) + array.shape) if array.ndim < rank else array
    array = like.layout.apply(array) if array.ndim == rank else array
    if quantized:
        q, params = _quantize_asymmetric(array)
        return ctx.const(name, q, "int8", params)
    return ctx.const(name, array.astype(np.float32), "float32")


def _quantize_asymmetric(array: np.ndarray) -> tuple[np.ndarray, QuantParams]:
    """Per-tensor asymmetric int8 of a constant, 0.0 exactly representable."""
    low, high = min(float(array.min()), 0.0), max(float(array.max()), 0.0)
    scale = max(high - low, 1e-12) / 255.0
    zero = int(np.clip(np.round(-128 - low / scale), -128, 127))
    q = np.clip(np.round(array / scale) + zero, -128, 127).astype(np.int8)
    return q, QuantParams.per_tensor(scale, zero)
