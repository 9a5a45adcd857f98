"""Verify an artifact against its baseline: accuracy or fidelity, latency and size, measured here."""

from __future__ import annotations

from dataclasses import dataclass

from calibration.dataset import Dataset
from compressor.evaluate import EvalResult, evaluate, output_fidelity
from compressor.latency import LatencyStats, measure_latency, timing_feeds
from compressor.progress import progress_bar
from targets.base import Runner


@dataclass(frozen=True)
class Measured:
    """What was measured for one runner."""

    runtime: str
    eval: EvalResult | None
    latency: LatencyStats
    size_bytes: int
    proxy_for: str | None = None

    def section(self) -> dict:
        """The report.json section for this runner."""
        return {
            "runtime": self.runtime,
            "proxy_for": self.proxy_for,
            "accuracy": None if self.eval is None else self.eval.accuracy,
            "eval_samples": None if self.eval is None else self.eval.samples,
            "size_bytes": self.size_bytes,
            "latency_ms": self.latency.to_dict(),
        }


def run_eval(runner: Runner, data: Dataset | None, label: str) -> EvalResult | None:
    """Evaluate with a progress bar; None when there is no data."""
    if data is None:
        return None
    with progress_bar(f"evaluate {label}", len(data)) as advance:
        return evaluate(runner, data, advance)


def measure_runners(
    runners: list[Runner],
    sizes: list[int],
    data: Dataset | None,
    labels: list[str],
    threads: int,
    warmup: int,
    runs: int,
) -> list[Measured]:
    """Evaluate each runner on data, then time them interleaved at batch 1."""
    evals = [run_eval(r, data, name) for r, name in zip(runners, labels, strict=True)]
    feeds = [timing_feeds(r, 1, data) for r in runners]
    with progress_bar("latency (interleaved)", runs) as advance:
        stats = measure_latency(runners, feeds, warmup, runs, threads, lambda: advance(1))
    return [
        Measured(r.runtime, e, s, size, r.proxy_for)
        for r, e, s, size in zip(runners, evals, stats, sizes, strict=True)
    ]


def compare_outputs(reference: EvalResult | None, candidate: EvalResult | None) -> dict | None:
    """Fidelity of candidate outputs against the reference outputs on the same samples."""
    if reference is None or candidate is None:
        return None
    return output_fidelity(reference.outputs, candidate.outputs)
