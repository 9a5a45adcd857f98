"""`compress sweep --workers 1`: jobs run in this process one at a time (no Ray), the summary
and exit code reflect every job, and --resume skips exactly the complete, unchanged jobs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from compressor.sweep.run import SweepSettings, run_sweep
from tests.cli_runner import work_bound_s

BODY = (
    '[grid]\ntargets = ["onnx"]\nprecisions = ["fp32", "int8"]\n'
    '[[jobs]]\nmodel = "digits"\ntarget = "onnx"\nprecision = "dynamic"\nid = "too-big"\n'
    "[jobs.budget]\nmax_size_mb = 0.01\n"
)


def sweep(path: Path, out: Path, resume: bool = False, timing: str = "shared") -> dict:
    settings = SweepSettings(path, out, workers=1, resume=resume, timing=timing, cores=2)
    return run_sweep(settings, Console(file=sys.stderr))


def test_in_process_sweep_summary_exit_code_and_resume(make_sweep, tmp_path: Path) -> None:
    path, out = make_sweep(BODY), tmp_path / "out"
    summary = sweep(path, out, timing="exclusive")
    rows = {r["id"]: r for r in summary["rows"]}
    assert summary["counts"] == {"passed": 2, "failed": 1} and summary["exit_code"] == 1
    assert rows["too-big"]["failed_budgets"] == ["max_size_mb"]
    for job_id, row in rows.items():  # each job is an ordinary compress output folder
        report = json.loads((out / job_id / "report.json").read_text())
        assert (out / job_id / "recipe.toml").is_file() and (
            out / job_id / report["artifact"]
        ).is_file()
        assert row["p50_ms"] == report["compressed"]["latency_ms"]["p50"]
        assert row["size_kb"] == round(report["compressed"]["size_bytes"] / 1024, 2)
    assert summary["jobs_at_once_per_node"] == {rows["too-big"]["node"]: 1}
    # --timing exclusive: each artifact timed again alone, and the front uses those times
    assert all(r["exclusive_p50_ms"] > 0 for r in rows.values())
    assert "--timing exclusive" in summary["latency_note"] and summary["timing"] == "exclusive"
    assert json.loads((out / "summary.json").read_text())["counts"] == summary["counts"]
    assert "| too-big | failed |" in (out / "summary.md").read_text()

    again = sweep(path, out, resume=True)  # nothing changed: every job is reused
    assert all(r["resumed"] for r in again["rows"]) and again["counts"] == summary["counts"]

    path.write_text(path.read_text().replace("max_size_mb = 0.01", "max_size_mb = 5.0"))
    third = sweep(path, out, resume=True)  # only the job whose recipe changed runs again
    resumed = {r["id"]: r["resumed"] for r in third["rows"]}
    assert resumed == {"digits-onnx-fp32": True, "digits-onnx-int8": True, "too-big": False}
    assert third["exit_code"] == 0 and third["counts"] == {"passed": 3}


def test_an_interrupted_sweep_restarts_where_it_stopped(make_sweep, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    path, out = (
        make_sweep('[grid]\ntargets = ["onnx"]\nprecisions = ["fp32", "int8", "dynamic"]\n'),
        tmp_path / "o",
    )
    command = [
        sys.executable,
        "-m",
        "compressor",
        "sweep",
        str(path),
        "-o",
        str(out),
        "--workers",
        "1",
    ]
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    sweep_proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    first = out / ".sweep" / "jobs" / "digits-onnx-fp32.json"
    deadline = time.monotonic() + work_bound_s()  # the first job's run
    while not first.exists() and sweep_proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    sweep_proc.send_signal(signal.SIGTERM)  # while the second job runs
    _, stderr = sweep_proc.communicate(timeout=work_bound_s())
    assert sweep_proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "rerun with --resume" in stderr
    assert first.exists() and not (out / "summary.json").exists()
    assert not list(out.glob(".compress-stage-*"))  # the interrupted job left nothing behind

    summary = sweep(path, out, resume=True)
    resumed = {r["id"]: r["resumed"] for r in summary["rows"]}
    assert resumed["digits-onnx-fp32"] and not resumed["digits-onnx-dynamic"]
    assert summary["exit_code"] == 0 and summary["counts"] == {"passed": 3}
