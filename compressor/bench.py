"""Benchmark artifacts of any target: interleaved latency percentiles, throughput, ratios."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from calibration.dataset import Dataset
from compressor import __version__
from compressor.bundle.manifest import runtime_version
from compressor.judging.latency import LatencyStats, measure_latency, timing_feeds
from compressor.model.artifacts import artifact_size, open_artifact, resolve_artifact
from compressor.model.dims import fix_dims
from compressor.model.loading import given_shapes
from compressor.progress import progress_bar
from compressor.recipe import check_counts
from compressor.report.host_check import bench_notes
from foundation.errors import UsageError
from foundation.resources import check_threads
from targets.base import Runner, TensorSpec
from targets.registry import host_int8

SEED = 0


@dataclass(frozen=True)
class BenchSettings:
    """How to time: warm-up and timed runs, threads, batch, and where inputs come from."""

    runs: int = field(default=100, metadata={"help": "Timed runs."})
    warmup: int = field(default=10, metadata={"help": "Warm-up runs."})
    threads: int = field(default=1, metadata={"help": "Intra-op threads."})
    batch: int = field(default=1, metadata={"help": "Samples per call."})
    data: str | None = field(
        default=None,
        metadata={"help": "Time on these samples (.npz, image folder, entry point)."},
    )

    def check(self) -> None:
        """Reject settings that cannot give a measurement."""
        if self.runs < 1 or self.warmup < 0 or self.threads < 1 or self.batch < 1:
            raise UsageError(
                "--runs, --threads and --batch must be at least 1, --warmup at least 0."
            )
        check_threads(self.threads)
        check_counts({"runs": self.runs, "warmup": self.warmup})


@dataclass(frozen=True)
class BenchResult:
    """One artifact's measured latency and size."""

    artifact: str
    runtime: str
    proxy_for: str | None
    size_bytes: int
    latency: LatencyStats

    def to_dict(self, reference: LatencyStats) -> dict:
        """JSON form with the p50 ratio and speed-up against the reference (first) artifact."""
        stats = self.latency.to_dict()
        return {
            "artifact": self.artifact,
            "runtime": self.runtime,
            "proxy_for": self.proxy_for,
            "size_bytes": self.size_bytes,
            "batch": stats.pop("batch"),
            "threads": stats.pop("threads"),
            "runs": stats.pop("runs"),
            "throughput": stats.pop("throughput"),
            "latency_ms": stats,
            "p50_ratio_to_first": round(self.latency.p50 / reference.p50, 4),
            "speedup_vs_first": round(reference.p50 / self.latency.p50, 4),
        }


def shaped_specs(runner: Runner, input_shapes: dict[str, list[int]]) -> list[TensorSpec]:
    """The runner's input specs with --input-shape applied: dynamic dims take the given sizes
    (so a dynamic-H/W model is timed at a real size, not 1x1), and a size that contradicts a
    fixed dim is refused instead of silently ignored."""
    given = given_shapes(input_shapes, [s.name for s in runner.inputs])
    return [fix_dims(s, given[s.name]) if s.name in given else s for s in runner.inputs]


def bench_artifacts(
    paths: list[Path],
    settings: BenchSettings,
    data: Dataset | None = None,
    input_shapes: dict[str, list[int]] | None = None,
) -> list[BenchResult]:
    """Open every artifact, then time them interleaved round by round on the same inputs."""
    settings.check()
    runners = [open_artifact(p, settings.threads, data, input_shapes) for p in paths]
    try:
        feeds = [
            timing_feeds(r, settings.batch, data, SEED, shaped_specs(r, input_shapes or {}))
            for r in runners
        ]
        with progress_bar("latency (interleaved)", settings.runs) as advance:
            stats = measure_latency(
                runners, feeds, settings.warmup, settings.runs, settings.threads, advance
            )
    finally:
        for runner in runners:
            runner.close()
    files = [resolve_artifact(Path(p)) for p in paths]
    return [
        BenchResult(str(f), r.runtime, r.proxy_for, artifact_size(f), s)
        for f, r, s in zip(files, runners, stats, strict=True)
    ]


def bench_json(results: list[BenchResult], settings: BenchSettings) -> dict:
    """Everything measured plus how, for machines (CI dashboards, the benchmark suite)."""
    reference = results[0].latency
    return {
        "settings": {
            "runs": settings.runs,
            "warmup": settings.warmup,
            "threads": settings.threads,
            "batch": settings.batch,
            "inputs": settings.data or f"fixed-seed noise (seed {SEED})",
            "interleaved": len(results) > 1,
        },
        "results": [r.to_dict(reference) for r in results],
        "notes": bench_notes([Path(r.artifact) for r in results]),
        "environment": {
            "compressor": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
            "int8_host": host_int8(),
            **{r.runtime: runtime_version(r.runtime, {}) for r in results},
        },
    }


def render_bench(results: list[BenchResult], settings: BenchSettings, console: Console) -> None:
    """Artifacts side by side (one column each): percentiles, throughput, ratio to the first."""
    title = (
        f"latency: {settings.runs} runs after {settings.warmup} warm-up, "
        f"{settings.threads} thread(s), inputs: {settings.data or 'fixed-seed noise'}"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for header in column_headers([Path(r.artifact) for r in results]):
        table.add_column(header, justify="right")
    reference = results[0].latency
    rows = {
        "runtime": lambda r: r.runtime + (f" (proxy: {r.proxy_for})" if r.proxy_for else ""),
        "size (KB)": lambda r: f"{r.size_bytes / 1024:.1f}",
        "batch": lambda r: str(r.latency.batch),
        **{f"{k} (ms)": _stat(k) for k in ("p50", "p90", "p99", "mean", "std")},
        "throughput (items/s)": lambda r: f"{r.latency.throughput:.1f}",
    }
    if len(results) > 1:
        rows["p50 vs first"] = lambda r: f"{r.latency.p50 / reference.p50:.2f}×"
        rows["speed-up vs first"] = lambda r: f"{reference.p50 / r.latency.p50:.2f}×"
    for label, cell in rows.items():
        table.add_row(label, *(cell(r) for r in results))
    console.print(table)
    for note in bench_notes([Path(r.artifact) for r in results]):
        console.print(f"• {note}")


def column_headers(paths: list[Path]) -> list[str]:
    """File names, widened to parent/name (then the full path) where two would read the same."""
    for depth in (1, 2):
        headers = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(headers)) == len(headers):
            return headers
    return [str(p) for p in paths]


def _stat(key: str) -> Callable[[BenchResult], str]:
    return lambda r: f"{getattr(r.latency, key):.3f}"
