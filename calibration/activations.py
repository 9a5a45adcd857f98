"""Observe every float activation of an ONNX model on calibration data, in onnxruntime.

One pass gathers each tensor's min, max and per-channel |max| (axis 1); a second pass, only
for histogram range methods, fills a 2048-bin histogram of |x| per tensor. The placement
rules, the range methods and the tuner all read these statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from calibration.dataset import Dataset

HISTOGRAM_BINS = 2048


@dataclass
class TensorStats:
    """What calibration saw of one tensor."""

    lowest: float = np.inf
    highest: float = -np.inf
    channel_absmax: np.ndarray | None = None
    histogram: np.ndarray | None = field(default=None, repr=False)

    @property
    def absmax(self) -> float:
        return float(max(abs(self.lowest), abs(self.highest)))

    def observe(self, values: np.ndarray) -> None:
        finite = values[np.isfinite(values)] if not np.isfinite(values).all() else values
        if finite.size:
            self.lowest = min(self.lowest, float(finite.min()))
            self.highest = max(self.highest, float(finite.max()))
        if not np.isfinite(values).all():  # ±inf masks: remembered as an unrepresentable range
            self.lowest = min(self.lowest, float(values.min()))
            self.highest = max(self.highest, float(values.max()))
        if values.ndim >= 2 and values.shape[1] > 1 and values.size:
            per = np.abs(np.moveaxis(values, 1, 0).reshape(values.shape[1], -1)).max(axis=1)
            if self.channel_absmax is None:
                self.channel_absmax = per
            elif self.channel_absmax.shape == per.shape:
                self.channel_absmax = np.maximum(self.channel_absmax, per)
            else:  # axis 1 is not a channel axis here (it follows the batch)
                self.channel_absmax = np.zeros(0, np.float32)

    def add_histogram(self, values: np.ndarray) -> None:
        top = self.absmax
        if not np.isfinite(top) or top == 0:
            return
        nonzero = np.abs(values[values != 0])  # exact zeros (ReLU) are exact in any scale
        hist, _ = np.histogram(nonzero, bins=HISTOGRAM_BINS, range=(0.0, top))
        self.histogram = hist if self.histogram is None else self.histogram + hist


def float_activations(model: onnx.ModelProto) -> list[str]:
    """Names of the float32 tensors that nodes produce or the graph takes as inputs."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    produced = [o for n in model.graph.node for o in n.output if o]
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits] + produced
    return [n for n in dict.fromkeys(names) if types.get(n) == onnx.TensorProto.FLOAT]


def _session(model_path: Path, names: list[str]) -> ort.InferenceSession:
    """A session whose outputs are all the named tensors (graph inputs are fed, not run)."""
    model = onnx.load(str(model_path))
    present = {o.name for o in model.graph.output}
    inputs = {i.name for i in model.graph.input}
    for name in names:
        if name not in present and name not in inputs:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])


def iterate_activations(
    model_path: Path, data: Dataset, batch_size: int, names: list[str] | None = None
) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Yield ({tensor: value}, samples) per batch for the named (default: all) float tensors."""
    names = names or float_activations(onnx.load(str(model_path)))
    session = _session(model_path, names)
    outputs = [o.name for o in session.get_outputs() if o.name in names]
    for inputs, _ in data.batches(batch_size):
        ran = session.run(outputs, inputs) if outputs else []  # [] would mean "all outputs"
        values = dict(zip(outputs, ran, strict=True))
        values.update({k: v for k, v in inputs.items() if k in names})
        yield values, len(next(iter(inputs.values())))


def collect_stats(
    model_path: Path,
    data: Dataset,
    batch_size: int,
    histograms: bool,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, TensorStats]:
    """Per-tensor statistics of every float activation over the whole calibration set."""
    stats: dict[str, TensorStats] = {}
    for values, count in iterate_activations(model_path, data, batch_size):
        for name, value in values.items():
            stats.setdefault(name, TensorStats()).observe(np.asarray(value, np.float32))
        if on_batch:
            on_batch(count)
    if histograms:
        for values, _ in iterate_activations(model_path, data, batch_size, list(stats)):
            for name, value in values.items():
                stats[name].add_histogram(np.asarray(value, np.float32))
    return stats
