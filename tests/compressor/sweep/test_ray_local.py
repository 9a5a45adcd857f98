"""`compress sweep --workers 2` on an embedded local Ray (real Ray, real kills): seven jobs, one
failing its budget, one with bad input, one whose worker is SIGKILLed mid-run and retried."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray")

BODY = """
[grid]
targets = ["onnx"]
precisions = ["fp32", "int8", "dynamic", "fp16"]

[[jobs]]
model = "digits"
target = "onnx"
precision = "int8"
id = "too-big"
[jobs.budget]
max_size_mb = 0.01

[[jobs]]
model = "digits"
target = "onnx"
precision = "int8"
id = "bad-calib"
calib = "no-such-file.npz"

[[jobs]]
model = "digits"
target = "onnx"
precision = "int8"
id = "killed"
calib = "kill_once:calib"
"""


def test_local_ray_sweep_with_failure_kill_retry_and_resume(
    make_sweep, run_cli, example: dict[str, Path], tmp_path: Path
) -> None:
    path, out = make_sweep(BODY), tmp_path / "out"
    marker = tmp_path / "killed-once"
    env = {
        "SWEEP_KILL_MARKER": str(marker),
        "SWEEP_KILL_CALIB": str(example["calib"]),
        "PYTHONPATH": f"{Path(__file__).parents[3]}:{Path(__file__).parent}",
    }
    command = ["sweep", str(path), "-o", str(out), "--workers", "2", "--allow-code"]
    first = run_cli(command, env, runs=7 + 1 + 1)  # seven jobs, one retry, Ray's start
    assert first.returncode == 1, first.stderr[-3000:]  # a budget failed, an input was bad
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["id"]: r for r in summary["rows"]}
    assert len(rows) == 7 and "embedded local Ray (2 CPUs)" in summary["backend"]
    assert summary["counts"] == {"passed": 5, "failed": 1, "error": 1}
    for job_id in (
        "digits-onnx-fp32",
        "digits-onnx-int8",
        "digits-onnx-dynamic",
        "digits-onnx-fp16",
    ):
        assert rows[job_id]["status"] == "passed" and rows[job_id]["attempts"] == 1
        assert (out / job_id / "report.json").is_file() and (out / job_id / "recipe.toml").is_file()
    # the killed job's worker died (SIGKILL) once; the retry ran it to the end
    assert marker.is_file() and rows["killed"]["status"] == "passed"
    assert rows["killed"]["attempts"] == 2
    log = (out / ".sweep" / "logs" / "killed.log").read_text()
    assert log.startswith("attempt 1: ") and "Worker" in log.splitlines()[0]
    # a failed budget and a bad input are final: recorded, not retried, the sweep went on
    assert rows["too-big"]["failed_budgets"] == ["max_size_mb"] and rows["too-big"]["attempts"] == 1
    assert rows["bad-calib"]["exit_code"] == 2 and rows["bad-calib"]["attempts"] == 1
    assert "no-such-file.npz" in rows["bad-calib"]["error"]
    assert not (out / "bad-calib").exists()  # a failed run leaves no partial output
    # two workers: two jobs timed at once on this node, each pinned to its own core, and the
    # summary says so
    assert list(summary["jobs_at_once_per_node"].values()) == [2]
    assert "each on its own cores" in summary["latency_note"]
    assert "--timing exclusive" in summary["latency_note"]
    states = [json.loads(p.read_text())["outcome"] for p in (out / ".sweep/jobs").glob("*.json")]
    assert len(states) == 7 and all(len(s["cores"]) == 1 for s in states)
    overlapping = [
        (a, b)
        for a in states
        for b in states
        if a["id"] < b["id"] and a["started"] < b["ended"] and b["started"] < a["ended"]
    ]
    assert overlapping and all(a["cores"] != b["cores"] for a, b in overlapping)
    assert "too-big" in first.stdout and "bad-calib" in first.stdout

    resumed = run_cli([*command, "--resume"], env, runs=1 + 1)  # bad-calib again, Ray's start
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    again = {r["id"]: r for r in json.loads((out / "summary.json").read_text())["rows"]}
    assert {i for i, r in again.items() if not r["resumed"]} == {"bad-calib"}
    assert again["killed"]["attempts"] == 2 and again["too-big"]["status"] == "failed"
