"""--timing exclusive: after the sweep, time each job's artifact again, one at a time on this
machine, so that latencies compare without jobs sharing cores."""

from __future__ import annotations

from pathlib import Path

from compressor.bench import BenchSettings, bench_artifacts
from compressor.sweep.jobs import Job
from compressor.sweep.worker import JobOutcome
from foundation.errors import CompressError


def retime_exclusive(jobs: list[Job], outcomes: list[JobOutcome]) -> dict[str, dict]:
    """{job id: exclusive p50/p90/p99 ms} for every job that wrote an artifact."""
    timings = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        if outcome.status not in ("passed", "failed"):
            continue
        recipe = job.recipe
        settings = BenchSettings(runs=recipe.runs, warmup=recipe.warmup, threads=recipe.threads)
        try:
            result = bench_artifacts(
                [Path(recipe.output)], settings, input_shapes=recipe.input_shapes or None
            )[0]
        except CompressError as exc:  # e.g. a runtime the cluster had and this machine lacks
            timings[job.id] = {"exclusive_error": str(exc)}
            continue
        stats = result.latency
        timings[job.id] = {
            "exclusive_p50_ms": round(stats.p50, 4),
            "exclusive_p90_ms": round(stats.p90, 4),
            "exclusive_p99_ms": round(stats.p99, 4),
        }
    return timings
