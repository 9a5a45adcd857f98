"""What --resume trusts: a job is complete when its state record's recipe hash and input hashes
match the job now and its output folder still holds the report and artifact it wrote."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from compressor.report.run_record import read_run
from compressor.report.staging import staged_file
from compressor.sweep.jobs import Job
from compressor.sweep.shipping import input_files
from compressor.sweep.worker import JobOutcome
from compressor.trust.strict_read import load_json

COMPLETE = ("passed", "failed")  # the run finished and wrote its report; errors run again
CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of a file; cached per (path, size, mtime) since many jobs share one model."""
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(job: Job) -> dict:
    """sha256 of the job's recipe (output folder aside) and of every input file it reads."""
    recipe_text = replace(job.recipe, output="").to_toml()
    inputs = {
        field: {str(p): file_sha256(p) for p in paths}
        for field, paths in input_files(job.recipe).items()
    }
    return {"recipe": hashlib.sha256(recipe_text.encode()).hexdigest(), "inputs": inputs}


def state_path(out_dir: Path, job_id: str) -> Path:
    return out_dir / ".sweep" / "jobs" / f"{job_id}.json"


def save_state(out_dir: Path, outcome: JobOutcome, print_: dict) -> None:
    """Record a finished job (outcome + fingerprint) atomically, for --resume and the summary."""
    data = {"outcome": outcome.to_dict(), "fingerprint": print_}
    with staged_file(state_path(out_dir, outcome.id)) as out:
        out.write(json.dumps(data, indent=1).encode())


# The form of each recorded outcome field (the summary does arithmetic and text on them).
OUTCOME_TYPES = {
    "id": str,
    "status": str,
    "exit_code": (int, type(None)),
    "error": (str, type(None)),
    "attempts": int,
    "node": str,
    "pid": int,
    "started": (int, float),
    "ended": (int, float),
    "log": str,
    "resumed": bool,
    "cores": (list, tuple),
}


def _well_typed(outcome: JobOutcome) -> bool:
    values = {key: getattr(outcome, key) for key in OUTCOME_TYPES}
    return all(isinstance(values[k], t) for k, t in OUTCOME_TYPES.items()) and all(
        isinstance(c, int) for c in values["cores"]
    )


def completed_outcome(out_dir: Path, job: Job, print_: dict) -> JobOutcome | None:
    """The recorded outcome when the job's outputs are complete and still match; else None."""
    try:
        data = load_json(state_path(out_dir, job.id), f"--resume state record of job '{job.id}'")
        outcome = JobOutcome.from_dict(data["outcome"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not _well_typed(outcome):  # an edited record: run the job again
        return None
    if outcome.status not in COMPLETE or data.get("fingerprint") != print_:
        return None
    if read_run(Path(job.recipe.output)).artifact_file() is None:
        return None
    return replace(outcome, resumed=True)
