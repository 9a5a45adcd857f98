"""ONNX explicit pads → TFLite SAME/VALID (+ explicit PAD), and average-pool divisor fixes.

TF SAME puts the odd pad at the end, PyTorch pads symmetrically: k3 s2 on an even input is
not SAME, so those become an explicit PAD + VALID (measured, shared/notes/tflite-lowering.md).
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

SAME, VALID = schema.Padding.SAME, schema.Padding.VALID


def same_pads(
    size: tuple, kernel: tuple, strides: list[int], dilations: list[int]
) -> list[int] | None:
    """TF SAME pads [top, left, bottom, right] for a known spatial size (None if unknown)."""
    begin, end = [], []
    for axis in range(2):
        if size[axis] is None:
            return None
        effective = (kernel[axis] - 1) * dilations[axis] + 1
        out = -(-size[axis] // strides[axis])
        total = max((out - 1) * strides[axis] + effective - size[axis], 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def auto_pads(
    size: tuple, kernel: tuple, strides: list[int], dilations: list[int], lower: bool
) -> list[int]:
    """ONNX auto_pad SAME_UPPER (odd pad at the end) / SAME_LOWER (at the start) as explicit
    [top, left, bottom, right] pads: the output is ceil(size / stride)."""
    begin, end = [], []
    for axis in range(2):
        effective = (kernel[axis] - 1) * dilations[axis] + 1
        out = -(-size[axis] // strides[axis])
        total = max((out - 1) * strides[axis] + effective - size[axis], 0)
        small, large = total // 2, total - total // 2
        begin.append(large if lower else small)
        end.append(small if lower else large)
    return begin + end


def resolve_padding(
    size: tuple,
    kernel: tuple,
    strides: list[int],
    dilations: list[int],
    pads: list[int],
    prefer_same: bool = True,
) -> tuple[int, list[int] | None]:
    """(padding mode, explicit pads to apply first or None)."""
    if not any(pads):
        return VALID, None
    if prefer_same and same_pads(size, kernel, strides, dilations) == list(pads):
        return SAME, None
    return VALID, list(pads)


def pool_divisor(
    size: tuple,
    kernel: tuple,
    strides: list[int],
    pads: list[int],
    ends: list[int],
    include_pad: bool,
    padding: int,
) -> np.ndarray | None:
    """Per-output factor (TFLite divisor / ONNX divisor) for AVERAGE_POOL_2D; None when all 1."""
    factors = []
    for axis in range(2):
        begin, end = pads[axis], ends[axis + 2]
        out = (size[axis] + begin + end - kernel[axis]) // strides[axis] + 1
        starts = np.arange(out) * strides[axis] - begin
        stops = starts + kernel[axis]
        inside = np.minimum(stops, size[axis]) - np.maximum(starts, 0)
        onnx_bound = size[axis] + pads[axis + 2]
        onnx = inside if not include_pad else np.minimum(stops, onnx_bound) - starts
        tflite = inside if padding == SAME else np.full(out, kernel[axis])
        factors.append(tflite / onnx)
    factor = np.outer(factors[0], factors[1])
    return None if np.allclose(factor, 1.0) else factor
