"""Empirical bias correction for int8 Conv/Gemm, kept only where it measurably helps.

Rounding a layer's weights shifts each output channel's mean by (W_int8 - W) · E[x]; taking
that shift out of the bias (what lifts NNCF's fidelity above plain onnxruntime) removes the
systematic part of the error. E[x], the mean of each layer's input per channel, is measured
on calibration samples in the fp32 graph; each layer is corrected for its own weight error
only. The corrected graph is kept only if its output SQNR on held-back calibration samples
beats the uncorrected one's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from calibration.activations import iterate_activations
from calibration.dataset import Dataset
from compressor.passes.held_back import output_sqnr, split_held_back
from targets.registry import EXACT_ARITHMETIC

CORRECTED_OPS = ("Conv", "Gemm")
__all__ = ["correct_biases", "output_sqnr"]


def _biased_layers(qdq: onnx.ModelProto, fp32: onnx.ModelProto) -> dict[str, dict]:
    """{output: {input, weight, fp32 weight, bias, node}} of each int8 Conv/Gemm with a bias."""
    producer = {o: n for n in qdq.graph.node for o in n.output}
    fp32_weights = {i.name for i in fp32.graph.initializer}
    layers = {}
    for node in qdq.graph.node:
        if node.op_type not in CORRECTED_OPS or len(node.input) < 3 or not node.input[2]:
            continue
        weight, data = producer.get(node.input[1]), producer.get(node.input[0])
        if weight is None or weight.op_type != "DequantizeLinear" or data is None:
            continue
        original = weight.input[0].removesuffix("_quantized")
        q = producer.get(data.input[0]) if data.op_type == "DequantizeLinear" else None
        if original not in fp32_weights or q is None or q.op_type != "QuantizeLinear":
            continue
        layers[node.output[0]] = {
            "input": q.input[0],
            "weight": weight,
            "original": original,
            "bias": node.input[2],
            "node": node,
        }
    return layers


def _input_means(fp32: Path, data: Dataset, names: list[str], batch: int) -> dict[str, np.ndarray]:
    """Mean of each named tensor per channel (axis 1, or the last axis of a 2-D tensor)."""
    sums: dict[str, np.ndarray] = {}
    for values, _ in iterate_activations(fp32, data, batch, names):
        for name, value in values.items():
            per = np.moveaxis(value, 1, 0).reshape(value.shape[1], -1).mean(1) * len(value)
            sums[name] = sums.get(name, 0) + per
    return {k: v / len(data) for k, v in sums.items()}


def _weight_shift(model: onnx.ModelProto, fp32: onnx.ModelProto, layer: dict, mean) -> np.ndarray:
    """(W_int8 - W) · E[x] per output channel, for a Conv (groups included) or a Gemm."""
    inits = {i.name: i for i in model.graph.initializer}
    dq = layer["weight"]
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
    zero = numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64) if len(dq.input) > 2 else 0
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % q.ndim
    shape = tuple(-1 if d == axis else 1 for d in range(q.ndim)) if scale.size > 1 else ()
    original = next(i for i in fp32.graph.initializer if i.name == layer["original"])
    error = (q - np.reshape(zero, shape)) * np.reshape(scale, shape) - numpy_helper.to_array(
        original
    )
    node = layer["node"]
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return (error if trans_b else error.T) @ mean
    groups = next((a.i for a in node.attribute if a.name == "group"), 1)
    per_group = error.shape[1]
    channels = np.arange(error.shape[0]) // (error.shape[0] // groups) * per_group
    index = channels[:, None] + np.arange(per_group)[None, :]
    return (error.sum(axis=(2, 3)) * mean[index]).sum(1) if error.ndim == 4 else np.zeros(0)


def _apply(model: onnx.ModelProto, layers: dict, shifts: dict[str, np.ndarray]) -> int:
    """Subtract each shift from its bias (a float initializer or an int32 DQ); returns count."""
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    done = 0
    for out, layer in layers.items():
        shift, bias = shifts.get(out), layer["bias"]
        dq = producer.get(bias)
        if shift is None:
            continue
        if bias in inits:
            value = numpy_helper.to_array(inits[bias]) - shift.astype(np.float32)
            inits[bias].CopyFrom(numpy_helper.from_array(value.astype(np.float32), bias))
        elif dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits:
            q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.int64)
            scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
            q = q - np.round(shift / scale).astype(np.int64)
            limits = np.iinfo(np.int32)
            fixed = np.clip(q, limits.min, limits.max).astype(np.int32)
            inits[dq.input[0]].CopyFrom(numpy_helper.from_array(fixed, dq.input[0]))
        else:
            continue
        done += 1
    return done


def correct_biases(
    fp32: Path, qdq: Path, data: Dataset, batch: int = 16, arithmetic: str = EXACT_ARITHMETIC
) -> dict:
    """Correct qdq's int8 Conv/Gemm biases in place if held-back output SQNR, measured in the
    scheme's int8 arithmetic, rises.

    `batch` must suit the model (its fixed batch, if it has one); both parts are whole batches.
    """
    split = split_held_back(data, batch)
    if isinstance(split, str):
        return {"applied": False, "why": split}
    fit, held = split
    model, reference = onnx.load(str(qdq)), onnx.load(str(fp32))
    layers = _biased_layers(model, reference)
    if not layers:
        return {"applied": False, "why": "no int8 Conv/Gemm with a bias"}
    means = _input_means(fp32, fit, sorted({layer["input"] for layer in layers.values()}), batch)
    shifts = {
        out: _weight_shift(model, reference, layer, means[layer["input"]])
        for out, layer in layers.items()
        if layer["input"] in means
    }
    count = _apply(model, layers, {k: v for k, v in shifts.items() if v.size})
    candidate = qdq.with_name(qdq.stem + ".bias-corrected.onnx")
    onnx.save(model, str(candidate))
    before = output_sqnr(fp32, qdq, held, batch, arithmetic)
    after = output_sqnr(fp32, candidate, held, batch, arithmetic)
    keep = after > before
    if keep:
        shutil.move(candidate, qdq)
    else:
        candidate.unlink()
    return {
        "applied": keep,
        "layers": count,
        "held_back_samples": len(held),
        "output_sqnr_db": {"without": round(before, 2), "with": round(after, 2)},
    }
