"""Per-block int8 sensitivity from one pass: how much each Q/DQ pair loses, channel by channel.

A block is one quantized activation (a QuantizeLinear→DequantizeLinear pair) and the ops that
read it (a conv+BN+act reads one such input). One float pass over calibration samples gives
every tensor; each is rounded with the scale and zero point the Q/DQ graph chose, and the
per-channel SQNR of that rounding says which block int8 breaks. The median over channels is
used, so one wide channel that squeezes all the others to zero (an outlier channel) ranks
its block first, while a tensor-wide SQNR would hide it behind that channel's energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from calibration.activations import iterate_activations
from calibration.dataset import Dataset
from compressor.judging.fidelity import sqnr_db

INT_RANGES = {
    onnx.TensorProto.UINT8: (0, 255),
    onnx.TensorProto.INT8: (-128, 127),
}


@dataclass(frozen=True)
class BlockScore:
    """One quantized activation: its tensor, the nodes reading it and its rounding SQNR."""

    tensor: str
    readers: tuple[str, ...]
    median_channel_sqnr_db: float
    worst_channel: int
    worst_channel_sqnr_db: float
    sqnr_db: float

    def to_dict(self) -> dict:
        return {
            "tensor": self.tensor,
            "readers": list(self.readers),
            "median_channel_sqnr_db": round(self.median_channel_sqnr_db, 2),
            "worst_channel": self.worst_channel,
            "worst_channel_sqnr_db": round(self.worst_channel_sqnr_db, 2),
            "sqnr_db": round(self.sqnr_db, 2),
        }


def quantized_activations(qdq: onnx.ModelProto) -> dict[str, tuple[float, int, int, int]]:
    """{float tensor: (scale, zero point, qmin, qmax)} for every per-tensor activation Q node."""
    inits = {i.name: i for i in qdq.graph.initializer}
    found = {}
    for node in qdq.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits or len(node.input) < 3:
            continue
        scale = numpy_helper.to_array(inits[node.input[1]])
        zero = inits[node.input[2]]
        if scale.size != 1:
            continue
        low, high = INT_RANGES.get(zero.data_type, (-128, 127))
        value = int(numpy_helper.to_array(zero).reshape(-1)[0])
        name = node.input[0].removesuffix("_QuantizeLinear_Input")
        found[name] = (float(scale.reshape(-1)[0]), value, low, high)
    return found


def _readers(qdq: onnx.ModelProto) -> dict[str, tuple[str, ...]]:
    """For each quantized tensor, the names of the non-Q/DQ nodes reading its DQ output."""
    producer = {o: n for n in qdq.graph.node for o in n.output}
    readers: dict[str, list[str]] = {}
    for node in qdq.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for name in node.input:
            dq = producer.get(name)
            q = (
                producer.get(dq.input[0])
                if dq is not None and dq.op_type == "DequantizeLinear"
                else None
            )
            if q is not None and q.op_type == "QuantizeLinear":
                key = q.input[0].removesuffix("_QuantizeLinear_Input")
                readers.setdefault(key, []).append(node.name)
    return {k: tuple(v) for k, v in readers.items()}


class _Energy:
    """Running per-channel signal and noise energy of one tensor."""

    def __init__(self) -> None:
        self.signal: np.ndarray | None = None
        self.noise: np.ndarray | None = None

    def add(self, value: np.ndarray, params: tuple[float, int, int, int]) -> None:
        scale, zero, low, high = params
        rounded = (np.clip(np.round(value / scale) + zero, low, high) - zero) * scale
        channels = value.shape[1] if value.ndim >= 2 else 1
        per = np.moveaxis(value, 1, 0).reshape(channels, -1) if value.ndim >= 2 else value[None]
        err = (
            np.moveaxis(value - rounded, 1, 0).reshape(channels, -1)
            if value.ndim >= 2
            else (value - rounded)[None]
        )
        signal, noise = (per.astype(np.float64) ** 2).sum(1), (err.astype(np.float64) ** 2).sum(1)
        if self.signal is not None and self.signal.shape != signal.shape:
            # axis 1 follows the batch here, not channels: keep tensor-wide totals
            self.signal, self.noise = self.signal.sum(keepdims=True), self.noise.sum(keepdims=True)
            signal, noise = signal.sum(keepdims=True), noise.sum(keepdims=True)
        self.signal = signal if self.signal is None else self.signal + signal
        self.noise = noise if self.noise is None else self.noise + noise


def block_sensitivity(
    fp32: Path, qdq: Path, data: Dataset, batch_size: int = 16
) -> list[BlockScore]:
    """Every quantized activation of `qdq`, worst first, measured on `data` in one float pass."""
    model = onnx.load(str(qdq))
    params, readers = quantized_activations(model), _readers(model)
    energy = {name: _Energy() for name in params}
    for values, _ in iterate_activations(fp32, data, batch_size, list(params)):
        for name, value in values.items():
            energy[name].add(np.asarray(value, np.float32), params[name])
    scores = []
    for name, e in energy.items():
        if e.signal is None:
            continue
        live = e.signal > 1e-12 * max(e.signal.max(), 1e-30)  # channels that carry signal
        per = sqnr_db(e.signal, e.noise)
        worst = int(np.argmin(np.where(live, per, np.inf)))
        scores.append(
            BlockScore(
                name,
                readers.get(name, ()),
                float(np.median(per[live])) if live.any() else 0.0,
                worst,
                float(per[worst]),
                float(sqnr_db(e.signal.sum(keepdims=True), e.noise.sum(keepdims=True))[0]),
            )
        )
    return sorted(scores, key=lambda s: s.median_channel_sqnr_db)
