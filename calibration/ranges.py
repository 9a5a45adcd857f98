"""Calibration range methods, one explicit table: each maps a tensor's statistics to a range.

onnxruntime's own entropy calibrator is a no-op as `quantize_static` drives it: it builds 128
histogram bins and searches thresholds over 128 quantized bins, so the only candidate is the
full range and its result equals minmax. Here the ranges come from our own statistics
(calibration/activations.py, 2048 bins of |x|) and reach onnxruntime's quantizer as a
calibration cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationMethod
from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

from calibration.activations import TensorStats
from foundation.errors import UsageError

QUANTIZED_BINS = 128  # int8: 127 levels each side of zero, as TensorRT's entropy calibration
PERCENTILE = 99.999
ENTROPY_STRIDE = 8  # candidate thresholds every 8 of 2048 bins


@dataclass(frozen=True)
class RangeMethod:
    """A range method: whether it needs histograms, and the function choosing |x| clip."""

    histograms: bool
    clip: Callable[[np.ndarray], int] | None  # histogram -> number of bins kept


def _entropy_bins(hist: np.ndarray) -> int:
    """The clip (in bins) whose 128-level quantization loses the least information (KL)."""
    best, best_kl = len(hist), np.inf
    for stop in range(QUANTIZED_BINS, len(hist) + 1, ENTROPY_STRIDE):
        p = hist[:stop].astype(np.float64)
        p[-1] += hist[stop:].sum()
        if p.sum() == 0:
            continue
        edges = np.linspace(0, stop, QUANTIZED_BINS + 1).astype(int)
        nonzero = (hist[:stop] > 0).astype(np.float64)
        merged = np.add.reduceat(hist[:stop].astype(np.float64), edges[:-1])
        counts = np.add.reduceat(nonzero, edges[:-1])
        spread = np.divide(merged, counts, out=np.zeros_like(merged), where=counts > 0)
        q = np.repeat(spread, np.diff(edges)) * nonzero
        kl = _kl(p, q)
        if kl < best_kl:
            best, best_kl = stop, kl
    return best


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    p, q = p / p.sum(), q / max(q.sum(), 1e-30)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))


def _percentile_bins(hist: np.ndarray) -> int:
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    return int(np.searchsorted(cdf, PERCENTILE / 100.0)) + 1


RANGE_METHODS: dict[str, RangeMethod] = {
    "minmax": RangeMethod(histograms=False, clip=None),
    "entropy": RangeMethod(histograms=True, clip=_entropy_bins),
    "percentile": RangeMethod(histograms=True, clip=_percentile_bins),
}


def range_method(name: str) -> RangeMethod:
    """The range method of a name, or a UsageError listing the choices."""
    try:
        return RANGE_METHODS[name]
    except KeyError:
        raise UsageError(
            f"Unknown calibration method '{name}'; choose one of {sorted(RANGE_METHODS)}."
        ) from None


def calibration_method(name: str) -> CalibrationMethod:
    """Kept for callers that name onnxruntime's calibrators; ranges are ours (see module doc)."""
    range_method(name)
    return CalibrationMethod.MinMax


def tensor_range(stats: TensorStats, method: str) -> tuple[float, float]:
    """(low, high) for one tensor; histogram methods clip |x| and never widen minmax."""
    low, high = stats.lowest, stats.highest
    clip = range_method(method).clip
    if clip is None or stats.histogram is None:
        return low, high
    top = stats.absmax * clip(stats.histogram) / len(stats.histogram)
    return max(low, -top), min(high, top)


def write_ranges_cache(stats: dict[str, TensorStats], method: str, path: Path) -> dict:
    """Save every tensor's range as onnxruntime's calibration cache; returns the ranges."""
    ranges = {}
    for name, s in stats.items():
        low, high = tensor_range(s, method)
        low, high = np.float32(np.nan_to_num(low)), np.float32(np.nan_to_num(high))
        ranges[name] = (np.array(min(low, 0), np.float32), np.array(max(high, 0), np.float32))
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), path)
    return ranges
