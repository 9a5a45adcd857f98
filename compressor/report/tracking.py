"""MLflow tracking: a compress run (or sweep job) logs its recipe as params, its measured figures
as metrics and report.json + recipe.toml + the artifact as artifacts; a sweep is a parent run.

Used with --track mlflow or when MLFLOW_TRACKING_URI is set; the store defaults to SQLite in
./mlflow.db (MLflow 3.17+ refuses its old mlruns/ file store without MLFLOW_ALLOW_FILE_STORE).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import click

from compressor.report.run_record import RunRecord, load_logged_run
from foundation.errors import UsageError

TRACKERS = ("mlflow", "none")
EXPERIMENT = "compress"
DEFAULT_DB = "mlflow.db"
TRACK_EXTRA = "pip install -e '.[track]' (mlflow-skinny, sqlalchemy, alembic)"
FIRST_CONTACT_S = 10.0  # --track-timeout: MLflow alone retries an unreachable server for minutes
LOCAL_STORES = ("sqlite:", "file:", "/")  # no server to wait for


def track_option(func: object) -> object:
    """The --track and --track-timeout flags shared by `compress run` and `compress sweep`."""
    func = click.option(
        "--track-timeout",
        type=click.FloatRange(min=1, max=3600),
        default=FIRST_CONTACT_S,
        show_default=True,
        help="Seconds to wait for the tracking server to answer first, before any work.",
    )(func)
    return click.option(
        "--track",
        type=click.Choice(TRACKERS),
        default=None,
        help="Log runs to MLflow (default when MLFLOW_TRACKING_URI is set; the store defaults "
        "to sqlite:///mlflow.db here; experiment from MLFLOW_EXPERIMENT_NAME, else 'compress').",
    )(func)


def tracking_uri(track: str | None) -> str | None:
    """Where to log, or None for no tracking."""
    if track == "none" or (track is None and not os.environ.get("MLFLOW_TRACKING_URI")):
        return None
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_DB}"


class Tracker:
    """One MLflow client and experiment; runs are created, filled and closed through it."""

    def __init__(self, uri: str, timeout: float = FIRST_CONTACT_S) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UsageError(
                f"Tracking to {uri} (--track mlflow or MLFLOW_TRACKING_URI) needs MLflow: "
                f"{TRACK_EXTRA}; or pass --track none."
            ) from None
        self.uri = uri
        if not uri.startswith(LOCAL_STORES):
            click.echo(f"Waiting up to {timeout:g} s for the MLflow server at {uri} ...", err=True)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
        try:
            with _bounded_requests(timeout):
                self.client = MlflowClient(tracking_uri=uri)
                found = self.client.get_experiment_by_name(name)
                self.experiment_id = found.experiment_id if found else self._create(name)
        except Exception as exc:  # the store or server the user named refused or did not answer
            raise UsageError(
                f"Cannot track to {uri} (--track mlflow or MLFLOW_TRACKING_URI): "
                f"{type(exc).__name__}: {str(exc).strip()[:800]} Fix the URI (the default is "
                "sqlite:///mlflow.db here), start the server, raise --track-timeout, or pass "
                "--track none. Nothing was run."
            ) from None

    def _create(self, name: str) -> str:
        """Artifacts beside a local SQLite store, not in whatever folder we run from."""
        location = None
        if self.uri.startswith("sqlite:///"):
            location = str(Path(self.uri.removeprefix("sqlite:///")).parent / "mlartifacts")
        return self.client.create_experiment(name, artifact_location=location)

    def start(self, name: str, parent: str | None = None, tags: dict | None = None) -> str:
        tags = dict(tags or {})
        if parent:
            tags["mlflow.parentRunId"] = parent
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def log(self, run_id: str, params: dict, metrics: dict, files: list[Path] = ()) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(_key(k), float(v), now, 0) for k, v in metrics.items()],
            params=[Param(_key(k), str(v)[:6000]) for k, v in params.items()],
        )
        for path in files:
            if path.is_file():
                self.client.log_artifact(run_id, str(path))
            elif path.is_dir():  # a folder-shaped artifact (e.g. .mlpackage), kept whole
                self.client.log_artifacts(run_id, str(path), artifact_path=path.name)

    def finish(self, run_id: str, ok: bool) -> None:
        self.client.set_terminated(run_id, status="FINISHED" if ok else "FAILED")


def log_output_folder(tracker: Tracker, folder: Path, name: str, parent: str | None = None) -> str:
    """Log a finished compress output folder (report.json + recipe.toml + artifact) as a run."""
    return log_record(tracker, load_logged_run(folder), name, parent)


def log_record(
    tracker: Tracker, run: tuple[RunRecord, list[Path]], name: str, parent: str | None = None
) -> str:
    """Log an output folder read by load_logged_run (links refused) as a run; the run id."""
    record, files = run
    report = record.report
    tags = {"target": report.get("target", ""), "precision": report.get("precision", "")}
    run_id = tracker.start(name, parent, tags)
    tracker.log(run_id, flatten(record.recipe or {}), report_metrics(report), files)
    tracker.finish(run_id, bool(report.get("passed")))
    return run_id


def open_tracker(track: str | None, timeout: float = FIRST_CONTACT_S) -> Tracker | None:
    """The tracker when tracking is on (checked before any work: MLflow missing, a store it
    refuses or a server that does not answer within `timeout` seconds are exit 2)."""
    uri = tracking_uri(track)
    return Tracker(uri, timeout) if uri else None


@contextlib.contextmanager
def _bounded_requests(timeout: float) -> Iterator[None]:
    """MLflow's HTTP settings (read per request) for the first contact: one try, `timeout` s."""
    bounded = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(math.ceil(timeout))}
    bounded["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    saved = {key: os.environ.get(key) for key in bounded}
    os.environ.update(bounded)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def log_tracked_run(tracker: Tracker | None, output: str) -> str | None:
    """After `compress run`: log its output folder as a run; the run id."""
    if tracker is None:
        return None
    folder = Path(output)
    return log_output_folder(tracker, folder, folder.name)


def flatten(data: dict, prefix: str = "") -> dict:
    """Nested tables as dotted keys: {"budget": {"max_size_mb": 1}} → {"budget.max_size_mb": 1}."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def report_metrics(report: dict) -> dict[str, float]:
    """Every measured number that says how good the result is, as MLflow metrics."""
    metrics: dict[str, float] = {"passed": float(bool(report.get("passed")))}
    for section in ("baseline", "fp32_reference", "compressed"):
        figures = report.get(section) or {}
        for key in ("accuracy", "size_bytes"):
            if isinstance(figures.get(key), int | float):
                metrics[f"{section}.{key}"] = figures[key]
        for pct in ("p50", "p90", "p99", "mean"):
            value = (figures.get("latency_ms") or {}).get(pct)
            if value is not None:
                metrics[f"{section}.latency_{pct}_ms"] = value
    fidelity = flatten((report.get("compressed") or {}).get("fidelity") or {}, "fidelity.")
    metrics |= {k: v for k, v in fidelity.items() if _number(v)}
    for budget in report.get("budgets", []):
        metrics[f"budget.{budget['name']}.passed"] = float(bool(budget.get("passed")))
        for key in ("value", "limit"):
            if _number(budget.get(key)):
                metrics[f"budget.{budget['name']}.{key}"] = budget[key]
    return metrics


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key(name: str) -> str:
    """MLflow keys allow letters, digits, _ - . space and /; anything else becomes _."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)[:250]
