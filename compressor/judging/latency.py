"""Latency of Runners: warm-up, timed runs, percentiles; several runners interleaved."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from calibration.dataset import Dataset
from foundation.resources import check_tensor_bytes
from targets.base import Runner, TensorSpec


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency in milliseconds and throughput in samples per second."""

    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    throughput: float
    runs: int
    batch: int
    threads: int

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> LatencyStats:
        """The stats from their report.json form (`latency_ms`)."""
        return cls(**{f: data[f] for f in cls.__dataclass_fields__})


def sample_feeds(
    runner: Runner, batch: int = 1, seed: int = 0, specs: list[TensorSpec] | None = None
) -> dict[str, np.ndarray]:
    """Fixed-seed inputs shaped from the specs (the runner's unless given, e.g. with dims
    fixed by --input-shape); dims still dynamic become `batch` (axis 0) or 1."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs or runner.inputs:
        shape = [
            (batch if i == 0 else 1) if not isinstance(d, int) or d <= 0 else d
            for i, d in enumerate(spec.shape)
        ]
        check_tensor_bytes(
            f"Model input '{spec.name}'",
            tuple(shape),
            np.dtype(spec.dtype).itemsize,
            "Fix its dims with --input-shape NAME:1x3x224x224, or lower --batch.",
        )
        if np.issubdtype(np.dtype(spec.dtype), np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            feeds[spec.name] = np.zeros(shape, spec.dtype)
    return feeds


def timing_feeds(
    runner: Runner,
    batch: int = 1,
    data: Dataset | None = None,
    seed: int = 0,
    specs: list[TensorSpec] | None = None,
) -> dict[str, np.ndarray]:
    """Inputs for timing at `batch` (or the runner's fixed batch): the first samples of data,
    repeated when there are fewer, or fixed-seed noise shaped from `specs` (default: the
    runner's) without data."""
    batch = runner.fixed_batch or batch
    if data is None:
        return sample_feeds(runner, batch, seed, specs)
    bound = data.bind(runner.inputs)
    for name, array in bound.inputs.items():
        check_tensor_bytes(
            f"A timing batch of '{name}'",
            (batch, *array.shape[1:]),
            array.itemsize,
            "Lower --batch.",
        )
    return bound.repeated(batch)  # a small set repeats up to the batch


def measure_latency(
    runners: list[Runner],
    feeds: list[dict[str, np.ndarray]],
    warmup: int = 10,
    runs: int = 100,
    threads: int = 1,
    on_round: Callable[[], None] | None = None,
) -> list[LatencyStats]:
    """Time runners interleaved round by round so machine noise hits them alike."""
    for runner, feed in zip(runners, feeds, strict=True):
        for _ in range(warmup):
            runner.run(feed)
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(runs):
        for i, (runner, feed) in enumerate(zip(runners, feeds, strict=True)):
            start = time.perf_counter()
            runner.run(feed)
            times[i].append((time.perf_counter() - start) * 1000.0)
        if on_round:
            on_round()
    return [_stats(t, _batch_of(f), threads) for t, f in zip(times, feeds, strict=True)]


def _batch_of(feed: dict[str, np.ndarray]) -> int:
    first = next(iter(feed.values()))
    return int(first.shape[0]) if first.ndim else 1


def _stats(ms: list[float], batch: int, threads: int) -> LatencyStats:
    arr = np.asarray(ms)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    mean = float(arr.mean())
    return LatencyStats(
        float(p50),
        float(p90),
        float(p99),
        mean,
        float(arr.std()),
        throughput=batch * 1000.0 / mean if mean > 0 else 0.0,
        runs=len(ms),
        batch=batch,
        threads=threads,
    )
