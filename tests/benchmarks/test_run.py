"""The benchmark suite's rows, tables and files, from a real pipeline run on the digits CNN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.run import SUITES, main, run_one
from benchmarks.tables import COLUMNS, markdown_table, summarize_report, write_results

META = {
    "suite": {"name": "quick", "threads": 1, "runs": 5},
    "environment": {
        "machine": "x86_64",
        "cpu_count": 2,
        "torch": "2.13.0",
        "onnxruntime": "1.x",
        "targets": ["onnx"],
    },
    "elapsed_s": 1.0,
}


@pytest.fixture(scope="module")
def int8_report(example_run: dict) -> dict:
    """report.json of the session's int8 run of the example (tests/conftest.py), as rows read it."""
    return json.loads((example_run["out"] / "report.json").read_text())


def test_row_ratios_use_baselines_from_the_same_run(int8_report: dict) -> None:
    row = summarize_report(int8_report)
    comp, ref = int8_report["compressed"], int8_report["fp32_reference"]
    p50 = comp["latency_ms"]["p50"]
    # rows round ratios to 3 decimals
    assert row["speedup_vs_torch"] == pytest.approx(
        int8_report["baseline"]["latency_ms"]["p50"] / p50, abs=6e-4
    )
    assert row["speedup_vs_fp32_same_runtime"] == pytest.approx(
        ref["latency_ms"]["p50"] / p50, abs=6e-4
    )
    assert row["size_ratio"] == pytest.approx(comp["size_bytes"] / ref["size_bytes"], rel=1e-3)
    assert row["size_ratio"] < 0.5  # int8 weights are a quarter of fp32 plus the graph
    assert row["accuracy_pct"] == pytest.approx(comp["accuracy"] * 100, abs=0.01)
    assert 0 < row["conversion_s"] < int8_report["elapsed_s"]
    assert row["passed"] is True and row["worst_channel_sqnr_db"] > 10  # the default floor


def test_markdown_and_json_hold_every_row_failures_included(int8_report: dict, tmp_path: Path):
    good = {"model": "digits", "target": "onnx", "precision": "int8", "status": "ok"}
    good |= summarize_report(int8_report)
    bad = {"model": "lstm", "target": "tflite", "precision": "int8", "status": "unsupported"}
    bad["error"] = "Target 'tflite' cannot lower LSTM (node 'lstm'). Supported ONNX ops: [...]"
    table = markdown_table([good, bad], META)
    header = next(line for line in table.splitlines() if line.startswith("| model"))
    assert [c.strip() for c in header.strip("|").split("|")] == [t for t, _, _ in COLUMNS]
    assert "| digits | onnx | int8 |" in table
    assert (
        "| lstm | tflite | int8 | unsupported: Target 'tflite' cannot lower LSTM (node 'lstm') |"
        in table
    )
    written = write_results([good, bad], META, tmp_path / "results")
    assert {p.name for p in written} >= {"latest.md", "latest.json"}
    data = json.loads((tmp_path / "results" / "latest.json").read_text())
    assert data["rows"][0]["p50_ms"] == good["p50_ms"] and data["suite"]["name"] == "quick"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    png = tmp_path / "results" / "latest.png"
    assert png in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_combination_becomes_an_error_row(example: dict[str, Path], tmp_path: Path):
    paths = {**example, "calib": tmp_path / "missing.npz"}
    row = run_one("digits", "onnx", "int8", paths, SUITES["quick"], tmp_path)
    assert row["model"] == "digits" and row["status"] == "failed"
    assert "missing.npz" in row["error"]


@pytest.mark.slow
def test_quick_suite_writes_the_table(tmp_path: Path) -> None:
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "latest.md").read_text()
    for model in SUITES["quick"].models:
        assert f"| {model} | onnx | int8 |" in table


def test_suites_are_sweep_files_over_the_zoo(tmp_path: Path) -> None:
    from benchmarks.zoo import ZOO_NAMES
    from compressor.sweep.jobs import expand_jobs
    from targets.registry import describe_targets

    available = [name for name, ok, _ in describe_targets() if ok]
    assert SUITES["full"].models == tuple(ZOO_NAMES)
    for config in SUITES.values():
        jobs, skipped = expand_jobs(config.spec, tmp_path / config.name)
        assert {(j.model, j.target) for j in jobs} == {
            (m, t) for m in config.models for t in available
        }
        assert all(j.recipe.runs == config.runs and j.recipe.threads == 1 for j in jobs)
        assert all(j.recipe.model.endswith(f"{j.model}/model.pt2") for j in jobs)
    full, _ = expand_jobs(SUITES["full"].spec, tmp_path / "full")
    if "tensorrt" in available:  # TensorRT declares no dynamic int8: that cell is skipped
        assert not any(j.target == "tensorrt" and j.precision == "dynamic" for j in full)
