"""The sweep's output folder (-o DIR), checked before any job runs, on a first run and on --resume.

DIR holds only what sweeps wrote (a `.sweep/` folder marks it, as report.json marks a compress
output folder), every path a sweep derives stays directly inside it, and nothing below it is a
symbolic link: job folders, DIR/.sweep/jobs and logs are written on every run, and a planted
link would carry those writes (and what --track reads back) outside DIR.
"""

from __future__ import annotations

from pathlib import Path

from compressor.report.run_record import first_link
from compressor.report.staging import check_writable
from compressor.sweep.spec import NAME
from foundation.errors import OutputError

MARKER = ".sweep"  # DIR/.sweep/{jobs,logs}: the state --resume reads


def job_folder(out_dir: Path, job_id: str) -> Path:
    """DIR/<job-id>, for an id that is a plain name (so the folder is directly inside DIR)."""
    folder = out_dir / job_id
    if not NAME.fullmatch(job_id) or folder.parent != out_dir:
        raise OutputError(f"Job id {job_id!r} is not a plain name; it would leave '{out_dir}'.")
    return folder


def check_sweep_folder(out_dir: Path) -> None:
    """Refuse a DIR that holds files no sweep wrote, or any link below it; then mark it ours."""
    check_writable(out_dir)
    marker = out_dir / MARKER
    if out_dir.is_dir() and any(out_dir.iterdir()) and not marker.is_dir():
        raise OutputError(
            f"Output folder '{out_dir}' already holds files that no sweep wrote (no {MARKER}/ "
            "folder). Choose a new or empty -o DIR so nothing of yours is overwritten."
        )
    link = first_link(out_dir)
    if link is not None:
        raise OutputError(
            f"'{link}' is a symbolic link inside the sweep folder '{out_dir}'; a sweep writes "
            "job outputs and its state there and will not follow links out of it. Remove the "
            "link (or choose a new -o DIR) and run again."
        )
    marker.mkdir(parents=True, exist_ok=True)
