"""Run one sweep job where it lands (this process or a Ray worker): an ordinary compress run
through run_pipeline, its outcome the verdict of the Report it returns."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, replace

from compressor.recipe import Recipe
from foundation.errors import CompressError

INTERNAL_ERROR = 3
LOG_TAIL = 20_000  # characters of a job's log kept in its outcome

# passed: every budget met (exit 0); failed: a budget failed (exit 1); error: bad input (2) or a
# bug (3), not retried; crashed: the process or node died (a kill, out of memory), retried.
STATUSES = ("passed", "failed", "error", "crashed")


@dataclass(frozen=True)
class JobOutcome:
    """How one job ended, where and when it ran, and its log."""

    id: str
    status: str
    exit_code: int | None
    error: str | None = None
    attempts: int = 1
    node: str = ""
    pid: int = 0
    started: float = 0.0
    ended: float = 0.0
    log: str = ""
    resumed: bool = False
    cores: tuple[int, ...] = ()  # the cores it was pinned to (embedded local Ray)

    @property
    def elapsed_s(self) -> float:
        return round(self.ended - self.started, 2) if self.ended else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> JobOutcome:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def run_job(job_id: str, recipe: Recipe) -> JobOutcome:
    """Run the recipe like `compress --recipe`: outputs in recipe.output, nothing on failure."""
    import torch

    from compressor.pipeline.run import run_pipeline

    # the job owns as many cores as it times with (at least 1: checked when the file was read)
    torch.set_num_threads(recipe.threads)
    started, log = time.time(), io.StringIO()
    status, code, error = "error", INTERNAL_ERROR, None
    with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        try:
            passed = run_pipeline(recipe).passed
            status, code = ("passed", 0) if passed else ("failed", 1)
        except CompressError as exc:
            status, code, error = "error", exc.exit_code, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug in compress: exit 3 like the CLI, with the traceback
            error = f"internal error {type(exc).__name__}: {exc}"
            log.write(traceback.format_exc())
    return JobOutcome(
        id=job_id,
        status=status,
        exit_code=code,
        error=error,
        node=socket.gethostname(),
        pid=os.getpid(),
        started=started,
        ended=time.time(),
        log=log.getvalue()[-LOG_TAIL:],
    )


def crashed_outcome(job_id: str, reason: str, attempts: int) -> JobOutcome:
    """The outcome of a job whose process or node died before it could report."""
    return JobOutcome(id=job_id, status="crashed", exit_code=None, error=reason, attempts=attempts)


def with_attempts(outcome: JobOutcome, attempts: int, earlier: list[str]) -> JobOutcome:
    """The outcome with its attempt count and the errors of earlier attempts in its log."""
    notes = "".join(f"attempt {i + 1}: {e}\n" for i, e in enumerate(earlier))
    return replace(outcome, attempts=attempts, log=notes + outcome.log)
