"""MLflow tracking against a real local SQLite store: a `compress run --track mlflow` and a small
sweep (one parent run, one child per job), read back with MLflow's own client."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

from compressor.sweep.run import SweepSettings, run_sweep

mlflow_tracking = pytest.importorskip("mlflow.tracking")


def client(uri: str):
    return mlflow_tracking.MlflowClient(tracking_uri=uri)


def test_compress_run_logs_recipe_metrics_and_artifacts(
    example: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    uri, out = f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "out"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "digits")
    args = [str(example["model"]), "--int8", "--calib", str(example["calib"])]
    args += ["--eval", str(example["eval"]), "-o", str(out), "--runs", "5", "--warmup", "1"]
    args += ["--max-size-mb", "1", "--track", "mlflow"]
    cli(args, code=0)
    report = json.loads((out / "report.json").read_text())
    experiment = client(uri).get_experiment_by_name("digits")
    (run,) = client(uri).search_runs([experiment.experiment_id])
    metrics, params = run.data.metrics, run.data.params
    assert run.info.status == "FINISHED" and run.info.run_name == "out"
    assert params["precision"] == "int8" and params["budget.max_size_mb"] == "1.0"
    assert params["model"] == str(example["model"])
    comp = report["compressed"]
    assert metrics["compressed.accuracy"] == pytest.approx(comp["accuracy"])
    assert metrics["compressed.latency_p99_ms"] == pytest.approx(comp["latency_ms"]["p99"])
    assert metrics["compressed.size_bytes"] == comp["size_bytes"]
    assert metrics["fidelity.cosine"] == pytest.approx(comp["fidelity"]["cosine"])
    assert metrics["budget.max_size_mb.passed"] == 1.0 and metrics["passed"] == 1.0
    logged = {f.path for f in client(uri).list_artifacts(run.info.run_id)}
    assert logged == {"report.json", "recipe.toml", "model.onnx"}


def test_sweep_logs_a_parent_run_and_one_child_per_job(
    make_sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.chdir(tmp_path)  # the default store: ./mlflow.db
    body = '[grid]\ntargets = ["onnx"]\nprecisions = ["int8"]\n'
    body += '[[jobs]]\nmodel = "digits"\ntarget = "onnx"\nprecision = "fp32"\nid = "broken"\n'
    body += 'eval = "missing.npz"\n'
    settings = SweepSettings(make_sweep(body), tmp_path / "out", workers=1, track="mlflow")
    summary = run_sweep(settings, Console(file=sys.stderr))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = client(uri).get_experiment_by_name("compress")
    runs = {r.info.run_name: r for r in client(uri).search_runs([experiment.experiment_id])}
    assert set(runs) == {"sweep", "digits-onnx-int8", "broken"}
    parent = runs["sweep"]
    assert parent.info.run_id == summary["mlflow_run_id"] and parent.info.status == "FAILED"
    assert parent.data.metrics["jobs_passed"] == 1 and parent.data.metrics["jobs_error"] == 1
    assert {f.path for f in client(uri).list_artifacts(parent.info.run_id)} >= {
        "summary.json",
        "summary.md",
    }
    good, bad = runs["digits-onnx-int8"], runs["broken"]
    for child in (good, bad):
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    row = summary["rows"][0]
    assert good.data.metrics["compressed.latency_p50_ms"] == pytest.approx(row["p50_ms"])
    assert good.data.metrics["compressed.accuracy"] == pytest.approx(
        row["accuracy_pct"] / 100, abs=1e-4
    )
    assert bad.info.status == "FAILED" and "missing.npz" in bad.data.params["error"]
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts beside the SQLite store


def test_where_tracking_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from compressor.report.tracking import open_tracker, tracking_uri
    from foundation.errors import UsageError

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(None) is None and tracking_uri("none") is None
    assert tracking_uri("mlflow") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking_uri(None) == tracking_uri("mlflow") == "sqlite:///elsewhere.db"
    assert tracking_uri("none") is None
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # as if MLflow were not installed
    with pytest.raises(UsageError, match=r"pip install -e '\.\[track\]'"):
        open_tracker("mlflow")
