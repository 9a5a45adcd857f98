"""Run a Runner over a Dataset: every output stacked, top-1 accuracy when labels exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from calibration.dataset import Dataset
from compressor.judging.fidelity import output_fidelity
from foundation.errors import DataError
from targets.base import Runner

DEFAULT_EVAL_BATCH = 32
__all__ = ["EvalResult", "evaluate", "output_fidelity", "top1_accuracy", "top1_correct"]


@dataclass(frozen=True)
class EvalResult:
    """Every output of every sample, stacked per output name (in the runner's order), and the
    first output's top-1 accuracy (None without labels)."""

    outputs: dict[str, np.ndarray]
    accuracy: float | None
    samples: int
    labels: np.ndarray | None = None

    @property
    def first(self) -> np.ndarray:
        """The first output: the one accuracy is measured on."""
        return next(iter(self.outputs.values()))


def evaluate(
    runner: Runner, data: Dataset, on_batch: Callable[[int], None] | None = None
) -> EvalResult:
    """Run every sample through runner at its fixed batch (or batches of 32)."""
    batch = runner.fixed_batch or DEFAULT_EVAL_BATCH
    chunks: dict[str, list[np.ndarray]] = {}
    for start, (inputs, _) in zip(range(0, len(data), batch), data.batches(batch), strict=True):
        n = min(batch, len(data) - start)
        if n < batch and runner.fixed_batch:
            inputs = data.feeds(np.minimum(np.arange(start, start + batch), len(data) - 1))
        for name, value in runner.run(inputs).items():
            chunks.setdefault(name, []).append(check_batched(np.asarray(value))[:n])
        if on_batch:
            on_batch(n)
    outputs = {name: np.concatenate(parts) for name, parts in chunks.items()}
    first = next(iter(outputs.values()))
    return EvalResult(outputs, top1_accuracy(first, data.labels), len(data), data.labels)


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
    """Fraction of samples whose argmax over the class axis equals the label."""
    correct = top1_correct(outputs, labels)
    return None if correct is None else float(correct.mean())


def top1_correct(outputs: np.ndarray, labels: np.ndarray | None) -> np.ndarray | None:
    """Per sample: does the argmax over the class axis equal the label. None without labels or
    when the output is not [B, classes] (up to axes of size 1): a map or a sequence has no
    single class per sample; --metric measures those."""
    if labels is None or sum(d > 1 for d in outputs.shape[1:]) > 1:
        return None
    flat = outputs.reshape(len(outputs), -1)
    if labels.size and int(labels.max()) >= flat.shape[1]:
        raise DataError(
            f"Labels go up to {int(labels.max())} but the model has {flat.shape[1]} outputs per "
            "sample: labels must be class indices into the model's output."
        )
    return flat.argmax(axis=1) == labels.reshape(-1)
