"""Log a finished sweep to MLflow: one parent run (summary), one child run per job."""

from __future__ import annotations

from pathlib import Path

from compressor.report.run_record import REPORT, load_logged_run
from compressor.report.tracking import Tracker, log_record
from compressor.sweep.jobs import Job


def log_sweep(tracker: Tracker, name: str, jobs: list[Job], summary: dict, out_dir: Path) -> str:
    """The parent run's id; jobs that wrote outputs log them, the others their error."""
    rows = list(zip(jobs, summary["rows"], strict=True))
    runs = {  # every folder read and checked before anything is logged
        job.id: load_logged_run(Path(job.recipe.output)) for job, row in rows if _logged(job, row)
    }
    parent = tracker.start(name, tags={"kind": "sweep"})
    for job, row in rows:
        if job.id in runs:
            log_record(tracker, runs[job.id], job.id, parent)
            continue
        child = tracker.start(job.id, parent, {"target": job.target, "precision": job.precision})
        tracker.log(child, {"error": row.get("error") or row["status"]}, {"passed": 0.0})
        tracker.finish(child, ok=False)
    counts = {f"jobs_{status}": n for status, n in summary["counts"].items()}
    params = {
        "sweep_file": summary.get("sweep_file"),
        "jobs": len(jobs),
        "backend": summary.get("backend"),
        "timing": summary.get("timing"),
    }
    metrics = {"passed": float(summary["passed"]), "jobs": len(jobs), **counts}
    files = [out_dir / n for n in ("summary.json", "summary.md", "summary.png")]
    tracker.log(parent, params, metrics, files)
    tracker.finish(parent, summary["passed"])
    return parent


def _logged(job: Job, row: dict) -> bool:
    """Whether the job left an output folder to log (else its error is logged)."""
    report = Path(job.recipe.output) / REPORT
    return row["status"] in ("passed", "failed") and (report.is_file() or report.is_symlink())
