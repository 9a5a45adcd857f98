"""Run a Runner over a Dataset: stacked outputs, top-1 accuracy when labels exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from calibration.dataset import Dataset
from compressor.errors import DataError
from targets.base import Runner

DEFAULT_EVAL_BATCH = 32


@dataclass(frozen=True)
class EvalResult:
    """First output of every sample, stacked, and top-1 accuracy (None without labels)."""

    outputs: np.ndarray
    accuracy: float | None
    samples: int


def evaluate(
    runner: Runner, data: Dataset, on_batch: Callable[[int], None] | None = None
) -> EvalResult:
    """Run every sample through runner at its fixed batch (or batches of 32)."""
    batch = runner.fixed_batch or DEFAULT_EVAL_BATCH
    chunks = []
    for start, (inputs, _) in zip(range(0, len(data), batch), data.batches(batch), strict=True):
        n = min(batch, len(data) - start)
        if n < batch and runner.fixed_batch:
            inputs = data.feeds(np.minimum(np.arange(start, start + batch), len(data) - 1))
        first = check_batched(np.asarray(next(iter(runner.run(inputs).values()))))
        chunks.append(first[:n])
        if on_batch:
            on_batch(n)
    outputs = np.concatenate(chunks)
    return EvalResult(outputs, top1_accuracy(outputs, data.labels), len(data))


def check_batched(output: np.ndarray) -> np.ndarray:
    """Outputs must keep the batch axis: a 0-d output cannot be matched to samples."""
    if output.ndim == 0:
        raise DataError(
            "The model returns a single value (a 0-d tensor) per call, not one row per sample, "
            "so its outputs cannot be compared sample by sample. Return shape [N, ...] (e.g. "
            "x.sum(dim=1) instead of x.sum())."
        )
    return output


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    """Fraction of samples whose argmax over the last axis equals the label."""
    if labels is None:
        return None
    flat = outputs.reshape(len(outputs), -1)
    if labels.size and int(labels.max()) >= flat.shape[1]:
        raise DataError(
            f"Labels go up to {int(labels.max())} but the model has {flat.shape[1]} outputs per "
            "sample: labels must be class indices into the model's output."
        )
    predictions = flat.argmax(axis=1)
    return float((predictions == labels.reshape(-1)).mean())


def output_fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Cosine similarity, max abs error, SQNR (dB) and top-1 agreement of candidate vs reference."""
    ref = reference.astype(np.float64).reshape(len(reference), -1)
    cand = candidate.astype(np.float64).reshape(len(candidate), -1)
    dot = (ref * cand).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = float(np.mean(np.where(norms > 0, dot / np.maximum(norms, 1e-30), 1.0)))
    noise = float(((ref - cand) ** 2).sum())
    signal = float((ref**2).sum())
    sqnr = float("inf") if noise == 0 else 10.0 * np.log10(max(signal, 1e-30) / noise)
    agreement = float((ref.argmax(axis=1) == cand.argmax(axis=1)).mean())
    return {
        "cosine": round(cosine, 6),
        "max_abs_error": float(np.abs(ref - cand).max()),
        "sqnr_db": round(sqnr, 3) if np.isfinite(sqnr) else 999.0,
        "top1_agreement": agreement,
    }
