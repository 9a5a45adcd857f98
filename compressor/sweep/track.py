"""Log a finished sweep to MLflow: one parent run (summary), one child run per job."""

from __future__ import annotations

from pathlib import Path

from compressor.sweep.jobs import Job
from compressor.tracking import Tracker, log_output_folder


def log_sweep(tracker: Tracker, name: str, jobs: list[Job], summary: dict, out_dir: Path) -> str:
    """The parent run's id; jobs that wrote outputs log them, the others their error."""
    parent = tracker.start(name, tags={"kind": "sweep"})
    for job, row in zip(jobs, summary["rows"], strict=True):
        folder = Path(job.recipe.output)
        if row["status"] in ("passed", "failed") and (folder / "report.json").is_file():
            log_output_folder(tracker, folder, job.id, parent)
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
