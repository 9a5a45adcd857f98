"""Drive a sweep: skip complete jobs on --resume, submit as capacity allows, retry a crashed job
once, record every outcome (state file + log) as soon as it is known."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Protocol

from compressor.report.staging import staged_file
from compressor.sweep.jobs import Job
from compressor.sweep.progress import SweepProgress
from compressor.sweep.resume import completed_outcome, fingerprint, save_state
from compressor.sweep.worker import JobOutcome, with_attempts

POLL_S = 0.5


class Backend(Protocol):
    """What the scheduler needs from where jobs run (see backends.py)."""

    description: str

    def can_take(self, job: Job) -> bool: ...
    def busy(self) -> bool: ...
    def submit(self, job: Job, attempt: int) -> None: ...
    def wait(self, timeout: float) -> list[tuple[Job, JobOutcome]]: ...
    def close(self) -> None: ...


def execute_jobs(
    jobs: list[Job],
    out_dir: Path,
    backend: Backend,
    progress: SweepProgress,
    resume: bool = False,
    retries: int = 1,
    prints: dict[str, dict] | None = None,
) -> list[JobOutcome]:
    """Every job's final outcome, in the order of `jobs`; `prints` are their fingerprints when
    already taken (taking them checks every input, so the sweep does it before anything else)."""
    prints = prints or {job.id: fingerprint(job) for job in jobs}
    outcomes = _resumed(jobs, out_dir, prints, progress) if resume else {}
    todo = deque(job for job in jobs if job.id not in outcomes)
    earlier: dict[str, list[str]] = {job.id: [] for job in jobs}
    while todo or backend.busy():
        while todo and backend.can_take(todo[0]):
            job = todo.popleft()
            backend.submit(job, len(earlier[job.id]) + 1)
            progress.set(job.id, "running", f"attempt {len(earlier[job.id]) + 1}")
        for job, outcome in backend.wait(POLL_S):
            attempt = len(earlier[job.id]) + 1
            if outcome.status == "crashed" and attempt <= retries:
                earlier[job.id].append(outcome.error or "crashed")
                todo.appendleft(job)
                progress.set(job.id, "retrying", outcome.error or "")
                continue
            final = with_attempts(outcome, attempt, earlier[job.id])
            _record(out_dir, final, prints[job.id])
            outcomes[job.id] = final
            progress.set(job.id, final.status, final.error or "")
        progress.tick()
    return [outcomes[job.id] for job in jobs]


def _resumed(
    jobs: list[Job], out_dir: Path, prints: dict, progress: SweepProgress
) -> dict[str, JobOutcome]:
    """The recorded outcomes of jobs whose outputs are complete and unchanged."""
    outcomes = {}
    for job in jobs:
        done = completed_outcome(out_dir, job, prints[job.id])
        if done is not None:
            outcomes[job.id] = done
            progress.set(job.id, done.status, "resumed: outputs complete and unchanged")
    return outcomes


def _record(out_dir: Path, outcome: JobOutcome, print_: dict) -> None:
    save_state(out_dir, outcome, print_)
    with staged_file(out_dir / ".sweep" / "logs" / f"{outcome.id}.log") as out:
        out.write(outcome.log.encode())
