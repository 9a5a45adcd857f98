"""Where sweep jobs run: in this process one after another, on an embedded local Ray, or on an
existing Ray cluster (inputs shipped through the object store, outputs brought back)."""

from __future__ import annotations

import logging
import os
import socket
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from compressor.sweep.cores import CorePool, pinned
from compressor.sweep.jobs import Job
from compressor.sweep.shipping import input_files, pack_input, unpack_folder
from compressor.sweep.worker import JobOutcome, crashed_outcome, run_job
from foundation.errors import UsageError

SWEEP_EXTRA = "pip install -e '.[sweep]' (Ray)"
# Ray errors that mean the process or node running a job died: worth one more try.
CRASH_ERRORS = (
    "WorkerCrashedError",
    "NodeDiedError",
    "OutOfMemoryError",
    "ObjectLostError",
    "OwnerDiedError",
    "LocalRayletDiedError",
    "TaskCancelledError",
    "RaySystemError",
)


class InProcessBackend:
    """Jobs run here, in order, one at a time (no Ray needed)."""

    description = "in this process, one job at a time"

    def __init__(self) -> None:
        self._queue: list[tuple[Job, int]] = []

    def can_take(self, job: Job) -> bool:
        return not self._queue

    def busy(self) -> bool:
        return bool(self._queue)

    def submit(self, job: Job, attempt: int) -> None:
        self._queue.append((job, attempt))

    def wait(self, timeout: float) -> list[tuple[Job, JobOutcome]]:
        job, _ = self._queue.pop(0)
        return [(job, run_job(job.id, job.recipe))]

    def close(self) -> None:
        self._queue.clear()


@dataclass(frozen=True)
class RaySettings:
    """How to reach Ray: an embedded local instance with `workers` CPUs, or a cluster."""

    workers: int = 2
    address: str | None = None


class RayBackend:
    """Jobs as Ray tasks, each reserving as many CPUs as it has threads."""

    def __init__(self, settings: RaySettings) -> None:
        ray = import_ray()
        self._ray = ray
        self._ship = settings.address is not None
        if self._ship:
            check_reachable(settings.address)
        try:
            _start_ray(ray, settings)
        except (ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:  # e.g. no token
            raise UsageError(_join_failure(settings.address, exc)) from None
        self._task = ray.remote(_cluster_task if self._ship else _local_task)
        self._cores = CorePool(settings.workers if not self._ship else 0)
        self._cpus = int(ray.cluster_resources().get("CPU", settings.workers))
        self._running: dict[object, tuple[Job, int, tuple[int, ...]]] = {}
        self._shipped: dict[tuple[str, str], tuple[str, object]] = {}
        where = f"the Ray cluster at {settings.address}" if self._ship else "an embedded local Ray"
        self.description = f"{where} ({self._cpus} CPUs)"

    def can_take(self, job: Job) -> bool:
        used = sum(j.recipe.threads for j, _, _ in self._running.values())
        return not self._running or used + job.recipe.threads <= self._cpus

    def busy(self) -> bool:
        return bool(self._running)

    def submit(self, job: Job, attempt: int) -> None:
        options = self._task.options(num_cpus=job.recipe.threads, max_retries=0)
        if self._ship:
            fields = list(input_files(job.recipe))
            shipped = [self._put(job, f) for f in fields]
            names = [name for name, _ in shipped]
            ref = options.remote(job.id, job.recipe, fields, names, *[r for _, r in shipped])
            cores = ()
        else:
            cores = self._cores.take(job.recipe.threads)
            ref = options.remote(job.id, job.recipe, cores)
        self._running[ref] = (job, attempt, cores)

    def _put(self, job: Job, field: str) -> tuple[str, object]:
        """Each input file goes into the object store once per sweep, however many jobs use it."""
        key = (field, str(getattr(job.recipe, field)))
        if key not in self._shipped:
            name, data = pack_input(job.recipe, field)
            self._shipped[key] = (name, self._ray.put(data))
        return self._shipped[key]

    def wait(self, timeout: float) -> list[tuple[Job, JobOutcome]]:
        ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref: object) -> tuple[Job, JobOutcome]:
        job, attempt, cores = self._running.pop(ref)
        self._cores.give(cores)
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.RayError as exc:
            return job, _ray_failure(job.id, exc, attempt)
        if not self._ship:
            return job, JobOutcome.from_dict(result)
        result, packed = result
        try:
            unpack_folder(packed, Path(job.recipe.output))
        except (tarfile.TarError, OSError) as exc:  # e.g. a path escaping DIR/<job-id>
            error = f"its outputs could not be brought back: {type(exc).__name__}: {exc}"
            return job, JobOutcome(id=job.id, status="error", exit_code=3, error=error)
        return job, JobOutcome.from_dict(result)

    def close(self) -> None:
        for ref in self._running:
            self._ray.cancel(ref, force=True)
        self._running.clear()
        self._ray.shutdown()


def _start_ray(ray: object, settings: RaySettings) -> None:
    """Join the cluster at settings.address, or start an embedded one with `workers` CPUs."""
    if settings.address is not None:
        ray.init(address=settings.address, log_to_driver=False, logging_level=logging.WARNING)
        return
    ray.init(
        address="local",  # a new instance, never a cluster left running on this machine
        num_cpus=settings.workers,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        _node_ip_address="127.0.0.1",
    )


def _join_failure(address: str | None, exc: Exception) -> str:
    """One paragraph on why Ray did not start or let us in, and what to check."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    why = f"{type(exc).__name__}: {' '.join(lines)[:400] or 'no reason given'}"
    if address is None:
        return f"Could not start an embedded Ray for the sweep ({why}). Run with --workers 1."
    return (
        f"Could not join the Ray cluster at {address} ({why}). If the cluster uses token "
        "authentication (RAY_AUTH_MODE=token), give this driver its token in RAY_AUTH_TOKEN or "
        "~/.ray/auth_token; check that the address, Ray and Python versions match the head's."
    )


def _ray_failure(job_id: str, exc: Exception, attempt: int) -> JobOutcome:
    """A dead worker or node is a crash (retried); an exception in the task is a bug (exit 3)."""
    name = type(exc).__name__
    first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else name
    classes = {cls.__name__ for cls in type(exc).__mro__}
    if classes & set(CRASH_ERRORS) and "RayTaskError" not in classes:
        return crashed_outcome(job_id, f"{name}: {first_line}", attempt)
    return JobOutcome(id=job_id, status="error", exit_code=3, error=f"{name}: {first_line}")


def _local_task(job_id: str, recipe: object, cores: tuple[int, ...]) -> dict:
    """On the embedded Ray: same filesystem, the job writes its outputs straight into DIR,
    pinned to its own cores."""
    with pinned(cores):
        return replace(run_job(job_id, recipe), cores=cores).to_dict()


def _cluster_task(
    job_id: str, recipe: object, fields: list[str], names: list[str], *blobs: bytes
) -> tuple[dict, bytes]:
    """On a cluster node: unpack the shipped inputs, run, and return the output folder."""
    from compressor.sweep.shipping import pack_folder, unpack_inputs

    with tempfile.TemporaryDirectory(prefix="compress-job-") as tmp:
        packed = {f: (n, b) for f, n, b in zip(fields, names, blobs, strict=True)}
        local = unpack_inputs(recipe, packed, Path(tmp) / "in")
        local = replace(local, output=str(Path(tmp) / "out" / job_id))
        outcome = run_job(job_id, local)
        return outcome.to_dict(), pack_folder(Path(local.output))


def check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing listens at address."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # Ray finds "auto" itself and says what is wrong with a malformed address
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise UsageError(
            f"Cannot reach the Ray cluster at {address}: {exc.strerror or exc}. Is `ray start "
            "--head` running there and the port open? (ray://HOST:10001 for Ray's client, "
            "HOST:6379 for the head's own port.)"
        ) from None


def import_ray() -> object:
    """Ray, or a UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            f"Parallel and cluster sweeps run on Ray, which is not installed: {SWEEP_EXTRA}. "
            "Without it, --workers 1 runs the jobs here one after another."
        ) from None
    return ray


def ray_installed() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def default_workers() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
