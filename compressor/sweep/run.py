"""A whole sweep: read the file, expand jobs, run them where asked, summarize, track."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from compressor.model.loading import check_model_file
from compressor.recipe import check_file_code
from compressor.report.tracking import open_tracker
from compressor.sweep.backends import (
    SWEEP_EXTRA,
    InProcessBackend,
    RayBackend,
    RaySettings,
    ray_installed,
)
from compressor.sweep.execute import execute_jobs
from compressor.sweep.folder import check_sweep_folder
from compressor.sweep.jobs import Job, expand_jobs
from compressor.sweep.progress import SweepProgress
from compressor.sweep.resume import fingerprint
from compressor.sweep.retime import retime_exclusive
from compressor.sweep.spec import TIMINGS, load_sweep
from compressor.sweep.summary import build_summary, write_summary
from foundation.errors import UsageError


@dataclass(frozen=True)
class SweepSettings:
    """How to run a sweep (the `compress sweep` flags)."""

    sweep_file: Path
    output: Path
    workers: int | None = None  # None: the core count (in-process when Ray is missing)
    ray_address: str | None = None
    resume: bool = False
    retries: int = 1
    timing: str = "shared"
    track: str | None = None
    track_timeout: float = 10.0  # seconds the tracking server has to answer first
    cores: int = 1
    trust_pickle: bool = False  # given on the command line only; a sweep file cannot set it
    allow_code: bool = False  # likewise: may the file's jobs import code (metric, factory, data)

    def check(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError("--workers must be at least 1.")
        if self.retries < 0:
            raise UsageError("--retries must be 0 or more.")
        if self.timing not in TIMINGS:
            raise UsageError(f"--timing must be one of {TIMINGS}.")


def make_backend(settings: SweepSettings, console: Console) -> object:
    """Ray for a cluster address or several workers; this process for one worker."""
    if settings.ray_address:
        return RayBackend(RaySettings(address=settings.ray_address))
    workers = settings.workers or settings.cores
    if workers > 1 and not ray_installed():
        if settings.workers:
            raise UsageError(f"--workers {workers} needs Ray: {SWEEP_EXTRA}; or use --workers 1.")
        console.print(
            f"Ray is not installed: jobs run here one at a time ({SWEEP_EXTRA} to run in parallel)."
        )
        workers = 1
    return InProcessBackend() if workers == 1 else RayBackend(RaySettings(workers=workers))


def plan_jobs(settings: SweepSettings, out_dir: Path) -> tuple[list[Job], list[str]]:
    """The sweep file's jobs (and the grid cells skipped), checked before any work: code a
    file names runs only with --allow-code, unpickling only with --trust-pickle."""
    jobs, skipped = expand_jobs(load_sweep(settings.sweep_file), out_dir)
    if not jobs:
        reasons = "; ".join(skipped) or "it lists no models or jobs"
        raise UsageError(f"Sweep file '{settings.sweep_file}' makes no job to run ({reasons}).")
    for job in jobs:
        where = f"Sweep file '{settings.sweep_file}', job '{job.id}',"
        check_file_code(job.recipe, where, settings.allow_code)
    if settings.trust_pickle:
        jobs = [replace(j, recipe=replace(j.recipe, trust_pickle=True)) for j in jobs]
    else:  # a hostile .pt2 fails the sweep (exit 2) before any job, not job by job
        for model in sorted({j.recipe.model for j in jobs}):
            check_model_file(model)
    return jobs, skipped


def run_sweep(settings: SweepSettings, console: Console) -> dict:
    """Run every job; the summary (also written to DIR/summary.json and summary.md)."""
    settings.check()
    started = time.perf_counter()
    out_dir = settings.output.absolute()
    jobs, skipped = plan_jobs(settings, out_dir)
    prints = {job.id: fingerprint(job) for job in jobs}  # checks every input before it is read
    check_sweep_folder(out_dir)
    # before the work: MLflow missing, a store it refuses or a silent server are exit 2
    tracker = open_tracker(settings.track, settings.track_timeout)
    backend = make_backend(settings, console)
    console.print(f"sweep: {len(jobs)} jobs on {backend.description} → {out_dir}/")
    try:
        with SweepProgress([j.id for j in jobs], console) as progress:
            outcomes = execute_jobs(
                jobs, out_dir, backend, progress, settings.resume, settings.retries, prints
            )
    finally:
        backend.close()
    timings = retime_exclusive(jobs, outcomes) if settings.timing == "exclusive" else None
    meta = {
        "sweep_file": str(settings.sweep_file),
        "backend": backend.description,
        "timing": settings.timing,
        "skipped": skipped,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    summary = build_summary(jobs, outcomes, meta, timings)
    write_summary(summary, out_dir)
    if tracker is not None:
        from compressor.sweep.track import log_sweep

        summary["mlflow_run_id"] = log_sweep(
            tracker, settings.sweep_file.stem, jobs, summary, out_dir
        )
    return summary
