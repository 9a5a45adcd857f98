"""Low-bit weights (W4A8): the Q/DQ graph's int8 weights requantized to a narrower range.

Every int8-weighted Conv/Gemm/MatMul gets per-channel symmetric weights on [-(2^(b-1)-1),
2^(b-1)-1] with scale max|W| / (2^(b-1)-1), stored in the same int8 initializers, so every
target lowers and runs them on its int8 kernels unchanged (the low-bit values are exact there;
no target here has a native int4 convolution). A bias held as int32 at s_x·s_w is requantized
to the new weight scale. Learned rounding (adaround) then rounds within that range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from compressor.passes.adaround import Layer, find_layers

WEIGHT_BITS = (8, 4)


def _set(inits: dict, name: str, value: np.ndarray) -> None:
    inits[name].CopyFrom(numpy_helper.from_array(value, name))


def _requantize_bias(model: onnx.ModelProto, layer: Layer, inits: dict, scale: np.ndarray) -> None:
    """An int32 bias DQ at s_x·s_w: its integers and scale follow the new weight scale."""
    producer = {o: n for n in model.graph.node for o in n.output}
    node = layer.node
    bias = producer.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    data = producer.get(node.input[0])
    if bias is None or bias.op_type != "DequantizeLinear" or bias.input[0] not in inits:
        return
    old = numpy_helper.to_array(inits[bias.input[0]]).astype(np.float64)
    value = old * numpy_helper.to_array(inits[bias.input[1]]).astype(np.float64)
    new_scale = float(numpy_helper.to_array(inits[data.input[1]])) * scale.reshape(-1)
    ints = np.clip(np.round(value / new_scale), -(2**31), 2**31 - 1).astype(np.int32)
    _set(inits, bias.input[0], ints)
    _set(inits, bias.input[1], new_scale.astype(np.float32))


def narrow_weights(fp32: Path, qdq: Path, bits: int) -> dict:
    """Requantize qdq's int8 weights in place to `bits` (symmetric, per channel as stored)."""
    if bits == 8:
        return {}
    model, reference = onnx.load(str(qdq)), onnx.load(str(fp32))
    inits = {i.name: i for i in model.graph.initializer}
    floats = {i.name: i for i in reference.graph.initializer}
    top = 2 ** (bits - 1) - 1
    layers = find_layers(model, reference)
    for layer in layers:
        dq = layer.weight
        weight = numpy_helper.to_array(floats[layer.original]).astype(np.float64)
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % weight.ndim
        reduce = tuple(d for d in range(weight.ndim) if d != axis)
        absmax = np.abs(weight).max(axis=reduce) if scale.size > 1 else np.abs(weight).max()
        new = np.where(absmax > 0, absmax / top, 1.0).reshape(scale.shape)
        shape = [-1 if d == axis else 1 for d in range(weight.ndim)] if scale.size > 1 else []
        ints = np.clip(np.round(weight / new.reshape(shape)), -top, top).astype(np.int8)
        _requantize_bias(model, layer, inits, new)
        _set(inits, dq.input[0], ints)
        _set(inits, dq.input[1], new.astype(np.float32))
    onnx.save(model, str(qdq))
    return {"bits": bits, "layers": len(layers), "range": [-top, top], "storage": "int8"}
