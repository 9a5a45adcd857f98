"""Judging an int8 step on calibration samples it did not see: the split, the score, the check.

Each optional int8 step (equalization, smoothing, the range method, bias correction) is fitted
on the first three quarters of the calibration samples and kept only if the int8 model's
output SQNR against fp32 rises on the last quarter. Graph rewrites must also leave the float
model's function unchanged, which `float_equal` checks in onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.activations import TensorStats, collect_stats
from calibration.dataset import Dataset
from calibration.varied import VariedDataset
from compressor.judging.fidelity import sqnr_db
from targets.registry import EXACT_ARITHMETIC, reference_runner

MIN_SAMPLES = 8
FLOAT_RTOL = 1e-4  # a rewritten float graph must match the original this closely
MIN_GAIN_DB = 0.1  # a step must raise held-back SQNR by more than this (smaller is noise)

# (float graph, destination, calibration data, range method, statistics) -> Q/DQ model written
Quantizer = Callable[[Path, Path, Dataset, str, dict[str, TensorStats]], None]


def split_held_back(data: Dataset, batch: int, min_held: int = 1) -> tuple[Dataset, Dataset] | str:
    """(fit, held) in whole batches, 3/4 and 1/4 of the samples; or why they cannot be split."""
    if isinstance(data, VariedDataset):
        return "calibration samples of several sizes"
    split = len(data) * 3 // 4 // batch * batch
    end = split + (len(data) - split) // batch * batch
    if len(data) < MIN_SAMPLES or split == 0 or end - split < min_held:
        return f"too few calibration samples ({len(data)}) to hold back"
    rest = {k: v[split:end] for k, v in data.inputs.items()}
    return data.take(split), Dataset(rest, None, data.source, data.shared, data.batch_axes)


def run_model_file_outputs(
    path: Path, data: Dataset, batch: int, arithmetic: str = "host"
) -> list[np.ndarray]:
    """Every output of the model at path on data, concatenated over batches, computed in the
    int8 arithmetic named (float graphs: "host", onnxruntime as shipped)."""
    runner = reference_runner(path, arithmetic=arithmetic)
    names = [spec.name for spec in runner.outputs]
    parts = [runner.run(inputs) for inputs, _ in data.batches(batch)]
    return [np.concatenate([p[name] for p in parts]) for name in names]


def output_sqnr(
    fp32: Path, qdq: Path, data: Dataset, batch: int = 64, arithmetic: str = EXACT_ARITHMETIC
) -> float:
    """Worst output's SQNR (dB) of qdq, run in the scheme's int8 arithmetic, against fp32."""
    pairs = zip(
        run_model_file_outputs(fp32, data, batch),
        run_model_file_outputs(qdq, data, batch, arithmetic),
        strict=True,
    )
    sqnrs = [
        sqnr_db(np.mean(r.astype(np.float64) ** 2), np.mean((r.astype(np.float64) - q) ** 2))
        for r, q in pairs
    ]
    return float(min(sqnrs))


def float_error(reference: Path, rewritten: Path, data: Dataset, batch: int) -> float:
    """Largest |difference| of any output, relative to that output's largest |value|."""
    worst = 0.0
    pairs = zip(
        run_model_file_outputs(reference, data, batch),
        run_model_file_outputs(rewritten, data, batch),
        strict=True,
    )
    for ref, new in pairs:
        scale = max(float(np.abs(ref).max()), 1e-30)
        worst = max(worst, float(np.abs(ref.astype(np.float64) - new).max()) / scale)
    return worst


def float_equal(reference: Path, rewritten: Path, data: Dataset, batch: int) -> bool:
    """Whether the rewritten float graph computes what the reference does (within FLOAT_RTOL)."""
    return float_error(reference, rewritten, data, batch) <= FLOAT_RTOL


@dataclass
class HeldBackScore:
    """Quantize a float graph on the fit samples and score it on the held-back ones."""

    reference: Path  # the fp32 model the user gave: every score compares against it
    fit: Dataset
    held: Dataset
    batch: int
    quantize: Quantizer
    work: Path
    histograms: bool = True  # only histogram range methods (or choosing one) need them
    arithmetic: str = EXACT_ARITHMETIC  # the scheme's int8 arithmetic every score is taken in
    stats: dict[Path, dict] = field(default_factory=dict)
    current: Path | None = None  # the graph adopted so far (the reference until a step wins)
    measured: dict[str, float] = field(default_factory=dict)  # current's SQNR per method

    def __post_init__(self) -> None:
        self.current = self.current or self.reference

    def baseline(self, method: str) -> float:
        """Held-back SQNR of the current graph with method, measured once."""
        if method not in self.measured:
            self.measured[method] = self.sqnr(self.current, method)
        return self.measured[method]

    def sqnr(self, graph: Path, method: str) -> float:
        """Held-back output SQNR (dB) of graph quantized with the range method."""
        if graph not in self.stats:  # statistics once per graph serve every range method
            self.stats[graph] = collect_stats(graph, self.fit, self.batch, self.histograms)
        dst = self.work / f"{graph.stem}.{method}.qdq.onnx"
        self.quantize(graph, dst, self.fit, method, self.stats[graph])
        score = output_sqnr(self.reference, dst, self.held, self.batch, self.arithmetic)
        dst.unlink()
        return score
