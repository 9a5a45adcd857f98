"""Saturation-safe int8 weights: every weight pair an AVX2 kernel sums in int16 fits it.

With u8 inputs in [0, 255], a pair saturates iff its same-sign weights have |w1| + |w2| > 128
(255 * 129 > 32767). Per output channel at risk the cheapest fix is chosen by the weight error
it leaves against the float weights: a larger scale (between 8 and 7 bits, that channel only),
or pulling just the pairs at risk in to |w1| + |w2| = 128, or a larger scale then those pairs.
Channels and layers without risk keep their 8-bit weights; int32 biases follow s_x * s_w.
Written by hand: onnxruntime offers only reduce_range (7-bit weights for the whole model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from targets.arithmetic.compensate import round_with_pair_limit
from targets.arithmetic.layers import (
    QLayer,
    find_qlayers,
    kernel_pairs,
    pairs_at_risk,
    runs_int8,
    weight_rows,
)

PAIR_LIMIT = 128  # the largest |w1| + |w2| whose sum over u8 inputs stays inside int16
SCALE_STEPS = 24  # candidate scale factors tried per channel between 1 and "scale alone"


@dataclass
class ChannelFix:
    """New int8 rows and scales for the channels at risk of one layer."""

    rows: np.ndarray  # [OC, K] int
    scale: np.ndarray  # [OC]
    factors: np.ndarray  # [OC] scale increase (1: kept)
    adjusted_pairs: int


def make_saturation_safe(
    qdq: onnx.ModelProto,
    float_weights: Mapping[str, np.ndarray] | None = None,
    moments: Mapping[str, np.ndarray] | None = None,
) -> tuple[onnx.ModelProto, list[dict]]:
    """A copy of qdq whose int8 weight pairs fit int16 on VPMADDUBSW kernels, and per layer
    at risk a record of what was done; `float_weights` (by quantized initializer name) are
    the originals the new weights are rounded from (default: the int8 weights dequantized);
    `moments` (by node name, E[x x^T] of its input, see compensate.input_moment) let the
    pull-in of pairs be compensated by the other weights and errors be weighed by output."""
    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    records = []
    for layer in find_qlayers(model):
        pairs = kernel_pairs(layer)
        risk = pairs_at_risk(layer, pairs)
        if not risk.any():
            continue
        original = _float_rows(layer, (float_weights or {}).get(layer.weight_dq.input[0]))
        moment = (moments or {}).get(layer.node.name)
        fix = fix_channels(layer, pairs, risk, original, moment)
        _write_layer(model, layer, fix)
        records.append(_record(model, layer, risk, fix, original))
    return model, records


def _float_rows(layer: QLayer, weight: np.ndarray | None) -> np.ndarray:
    """The float weights as [OC, K] rows (from `weight` when its shape fits, else dequantized)."""
    if weight is None or weight.shape != layer.weight.shape:
        return layer.rows * layer.w_scale[:, None]
    return weight_rows(layer.node, weight).astype(np.float64)


def fix_channels(
    layer: QLayer,
    pairs: np.ndarray,
    risk: np.ndarray,
    original: np.ndarray,
    moment: np.ndarray | None = None,
) -> ChannelFix:
    """Per channel at risk, the fix with the least error: output error e H e^T with the
    input's moment H when known (weight error otherwise) of a scale factor with pair
    pull-in, or (with H) the 8-bit scale and compensated pull-in."""
    rows, scale = layer.rows.copy(), layer.w_scale.copy()
    factors = np.ones_like(scale)
    at_risk = np.flatnonzero(risk.any(1))
    per_tensor = np.unique(layer.w_scale).size == 1 and rows.shape[0] > 1
    best_err = np.full(len(at_risk), np.inf)
    adjusted = np.zeros(len(at_risk), int)
    for factor in _candidate_factors(rows[at_risk], pairs, per_tensor):
        new_scale = scale[at_risk] * factor
        q, moved = quantize_rows(original[at_risk] / new_scale[:, None], pairs)
        err = _error(q * new_scale[:, None] - original[at_risk], moment)
        better = err < best_err
        best_err[better] = err[better]
        rows[at_risk[better]] = q[better]
        factors[at_risk[better]] = factor
        adjusted[better] = moved[better]
    if moment is not None:
        q = round_with_pair_limit(original[at_risk] / scale[at_risk, None], moment, pairs)
        better = _error(q * scale[at_risk, None] - original[at_risk], moment) < best_err
        rows[at_risk[better]] = q[better]
        factors[at_risk[better]] = 1.0
        adjusted[better] = _pulled(q[better], pairs).sum(1)
    scale = layer.w_scale * factors
    return ChannelFix(rows, scale, factors, int(adjusted.sum()))


def _error(difference: np.ndarray, moment: np.ndarray | None) -> np.ndarray:
    """Per row, the squared output error (d H d^T) or, without H, the squared weight error."""
    if moment is None:
        return (difference**2).sum(1)
    # (d @ H) * d through BLAS: a plain three-operand einsum loops in C without it, 20x slower.
    return ((difference @ moment) * difference).sum(1)


def _pulled(rows: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """[C, P] pairs sitting exactly at the limit (pulled in, or rounded there)."""
    padded = np.concatenate([rows, np.zeros((rows.shape[0], 1))], axis=1)
    w = padded[:, pairs]
    return (w[..., 0] * w[..., 1] > 0) & (np.abs(w.sum(-1)) == PAIR_LIMIT)


def _candidate_factors(rows: np.ndarray, pairs: np.ndarray, per_tensor: bool) -> np.ndarray:
    """Scale factors from 1 (pull in pairs only) to one that alone brings every pair to 128;
    just 1 for per-tensor scales, where a factor would reach channels without risk."""
    if per_tensor:
        return np.ones(1)
    padded = np.concatenate([rows, np.zeros((rows.shape[0], 1), rows.dtype)], axis=1)
    w = padded[:, pairs]
    worst = np.maximum(np.clip(w, 0, None).sum(-1), -np.clip(w, None, 0).sum(-1)).max()
    return np.linspace(1.0, (worst + 1) / PAIR_LIMIT, SCALE_STEPS)


def quantize_rows(values: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round to int8 ([-127, 127]), then pull every same-sign pair over 128 in to exactly 128,
    splitting the excess to keep the pair closest to its unrounded values; (rows, pairs moved)."""
    q = np.clip(np.rint(values), -127, 127)
    padded_q = np.concatenate([q, np.zeros((q.shape[0], 1))], axis=1)
    padded_v = np.concatenate([values, np.zeros((q.shape[0], 1))], axis=1)
    pq, pv = padded_q[:, pairs], padded_v[:, pairs]  # [OC, P, 2]
    sign = np.sign(pq.sum(-1, keepdims=True))
    same = (pq[..., 0] * pq[..., 1]) >= 0
    over = same & (np.abs(pq.sum(-1)) > PAIR_LIMIT)
    magnitude = np.abs(pv)
    excess = magnitude.sum(-1, keepdims=True) - PAIR_LIMIT
    first = np.clip(np.rint(magnitude[..., :1] - excess / 2), PAIR_LIMIT - 127, 127)
    pulled = sign * np.concatenate([first, PAIR_LIMIT - first], axis=-1)
    pq = np.where(over[..., None], pulled, pq)
    flat = pairs.reshape(-1)
    out = padded_q.copy()
    out[:, flat] = pq.reshape(q.shape[0], -1)
    return out[:, : q.shape[1]], over.sum(1)


def _write_layer(model: onnx.ModelProto, layer: QLayer, fix: ChannelFix) -> None:
    """Store the new weights and scales, and requantize the int32 bias to s_x * s_w."""
    inits = {i.name: i for i in model.graph.initializer}
    weight = _from_rows(layer, fix.rows).astype(np.int8)
    inits[layer.weight_dq.input[0]].CopyFrom(
        numpy_helper.from_array(weight, layer.weight_dq.input[0])
    )
    scale_name = layer.weight_dq.input[1]
    old_scale = numpy_helper.to_array(inits[scale_name])
    new_scale = (
        fix.scale.astype(old_scale.dtype).reshape(old_scale.shape)
        if old_scale.size > 1
        else (np.asarray(fix.scale[0], old_scale.dtype).reshape(old_scale.shape))
    )
    inits[scale_name].CopyFrom(numpy_helper.from_array(new_scale, scale_name))
    _rescale_bias(model, layer, fix.factors, inits)


def _from_rows(layer: QLayer, rows: np.ndarray) -> np.ndarray:
    """[OC, K] rows back in the initializer's layout."""
    if layer.node.op_type == "Conv":
        return rows.reshape(layer.weight.shape)
    if layer.node.op_type == "Gemm" and any(
        a.name == "transB" and a.i for a in layer.node.attribute
    ):
        return rows
    return rows.T


def _rescale_bias(model: onnx.ModelProto, layer: QLayer, factors: np.ndarray, inits: dict) -> None:
    """Divide the int32 bias by each channel's scale factor and multiply its scale by it."""
    if len(layer.node.input) < 3 or not layer.node.input[2] or np.all(factors == 1):
        return
    producer = {o: n for n in model.graph.node for o in n.output}
    dq = producer.get(layer.node.input[2])
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
        return
    q_name, s_name = dq.input[0], dq.input[1]
    q = numpy_helper.to_array(inits[q_name]).astype(np.float64)
    s = numpy_helper.to_array(inits[s_name])
    new_q = np.rint(q / factors.reshape(q.shape)).astype(np.int32)
    new_s = (s.astype(np.float64) * factors.reshape(s.shape)).astype(s.dtype)
    inits[q_name].CopyFrom(numpy_helper.from_array(new_q, q_name))
    inits[s_name].CopyFrom(numpy_helper.from_array(new_s, s_name))


def _record(
    model: onnx.ModelProto, layer: QLayer, risk: np.ndarray, fix: ChannelFix, original
) -> dict:
    """What was at risk in this layer, what was done and why."""
    rescaled = fix.factors > 1
    before = _weight_sqnr(original, layer.rows * layer.w_scale[:, None])
    after = _weight_sqnr(original, fix.rows * fix.scale[:, None])
    return {
        "layer": layer.node.name or layer.node.output[0],
        "op": layer.node.op_type,
        "pairs_at_risk": int(risk.sum()),
        "channels_at_risk": int(risk.any(1).sum()),
        "channels": int(risk.shape[0]),
        "channels_rescaled": int(rescaled.sum()),
        "max_scale_factor": round(float(fix.factors.max()), 4),
        "pairs_pulled_in": fix.adjusted_pairs,
        "weight_sqnr_db": {"before": before, "after": after},
        "fused_by_onnxruntime": runs_int8(model, layer),
        "why": f"{int(risk.sum())} same-sign weight pairs with |w1|+|w2| > {PAIR_LIMIT} can "
        "leave int16 on VPMADDUBSW kernels (x86 without VNNI); each channel at risk took the "
        "scale increase and pair pull-in with the least weight error",
    }


def _weight_sqnr(reference: np.ndarray, approx: np.ndarray) -> float:
    noise = float(((reference - approx) ** 2).sum())
    return round(10 * np.log10(float((reference**2).sum()) / noise), 2) if noise else float("inf")


def reduce_weight_range(
    qdq: onnx.ModelProto, float_weights: Mapping[str, np.ndarray] | None = None
) -> onnx.ModelProto:
    """Every int8 weight re-rounded to 7 bits ([-64, 64], as onnxruntime's reduce_range):
    the blanket fix saturation-safe weights are measured against."""
    model = onnx.ModelProto()
    model.CopyFrom(qdq)
    for layer in find_qlayers(model):
        original = _float_rows(layer, (float_weights or {}).get(layer.weight_dq.input[0]))
        peak = np.abs(original).max(1)
        scale = np.where(peak > 0, peak / 64, layer.w_scale)
        if np.unique(layer.w_scale).size == 1:
            scale = np.full_like(scale, scale.max())
        rows = np.clip(np.rint(original / scale[:, None]), -64, 64)
        _write_layer(model, layer, ChannelFix(rows, scale, scale / layer.w_scale, 0))
    return model
