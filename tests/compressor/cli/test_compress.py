"""End-to-end `compress MODEL ...` through the real CLI: outputs, report contract, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.cli_runner import work_bound_s


@pytest.fixture(scope="module")
def int8_run(example_run):
    """`compress MODEL --target onnx --int8 --calib --eval --max-accuracy-drop 1 --max-size-mb 1
    --runs 20 -o OUT` (the session's shared run, tests/conftest.py): (CLI result, OUT)."""
    return example_run["result"], example_run["out"]


def test_int8_run_meets_budgets_and_writes_the_contract(int8_run):
    result, out = int8_run
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True
    assert (report["target"], report["precision"], report["artifact"]) == (
        "onnx",
        "int8",
        "model.onnx",
    )
    assert (out / "model.onnx").exists() and (out / "recipe.toml").exists()
    for section in ("baseline", "compressed"):
        s = report[section]
        assert 0.9 <= s["accuracy"] <= 1.0
        assert s["size_bytes"] > 0
        assert set(s["latency_ms"]) >= {"p50", "p90", "p99"}
        assert s["latency_ms"]["p50"] <= s["latency_ms"]["p99"]
    assert report["baseline"]["accuracy"] - report["compressed"]["accuracy"] <= 0.01
    assert report["compressed"]["size_bytes"] <= 0.4 * report["baseline"]["size_bytes"]
    assert report["compressed"]["fidelity"]["cosine"] > 0.99
    given = {b["name"] for b in report["budgets"] if b["source"] == "flag"}
    assert given == {"max_accuracy_drop", "max_size_mb"}
    assert {b["source"] for b in report["budgets"]} == {"flag", "default"}
    assert all(b["passed"] for b in report["budgets"])
    assert "fp32_reference" in report
    assert "top-1 accuracy" in result.output and "PASSED" in result.output
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".compress-stage")]


def test_saved_recipe_reproduces_the_run(int8_run, tmp_path, cli):
    _, out = int8_run
    result = cli(["--recipe", out / "recipe.toml", "--runs", "5", "-o", tmp_path / "again"])
    assert result.exit_code == 0, result.output
    first = json.loads((out / "report.json").read_text())
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["compressed"]["accuracy"] == first["compressed"]["accuracy"]
    assert again["precision"] == "int8"


def test_failed_latency_budget_exits_1_and_still_reports(example, tmp_path, cli):
    result = cli(
        [
            example["model"],
            "--fp16",
            "--eval",
            example["eval"],
            "--runs",
            "5",
            "--max-latency-ms",
            "0.000001",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 1
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["passed"] is False
    failed = [b for b in report["budgets"] if not b["passed"]]
    assert failed[0]["name"] == "max_latency_ms" and failed[0]["value"] > failed[0]["limit"]
    assert "FAIL" in result.output


def test_label_free_eval_reports_fidelity(example, tmp_path, cli):
    with np.load(example["eval"]) as archive:
        np.savez(tmp_path / "nolabels.npz", x=archive["x"])
    result = cli(
        [
            example["model"],
            "--dynamic",
            "--eval",
            tmp_path / "nolabels.npz",
            "--min-fidelity",
            "0.99",
            "--runs",
            "5",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["compressed"]["accuracy"] is None
    assert report["compressed"]["fidelity"]["cosine"] >= 0.99


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--int8"], "--int8 needs calibration data"),
        (["--int8", "--calib", "{bad_keys}"], "model's inputs are"),
        (["--int8", "--calib", "{nan}"], "NaN/Inf"),
        (["--int8", "--calib", "{empty}"], "no samples"),
        (["--target", "nope"], "Unknown target 'nope'"),
        (["--max-accuracy-drop", "1"], "needs labelled evaluation data"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(example, tmp_path, extra, message, cli):
    np.savez(tmp_path / "bad_keys.npz", pixels=np.ones((4, 1, 8, 8), np.float32))
    nan = np.ones((4, 1, 8, 8), np.float32)
    nan[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=nan)
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 1, 8, 8), np.float32))
    files = {k: str(tmp_path / f"{k}.npz") for k in ("bad_keys", "nan", "empty")}
    args = [a.format(**files) for a in extra]
    out = tmp_path / "o"
    result = cli([example["model"], *args, "-o", out])
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()


def test_output_path_that_is_a_file_is_rejected(example, tmp_path, cli):
    (tmp_path / "file").write_text("x")
    result = cli([example["model"], "-o", tmp_path / "file"])
    assert result.exit_code == 2 and "not a directory" in result.output


def test_console_script_prints_errors_without_traceback(tmp_path):
    (tmp_path / "broken.pt2").write_bytes(b"PK\x03\x04garbage")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "compressor",
            str(tmp_path / "broken.pt2"),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=work_bound_s(),
    )
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_help_lists_commands_and_exit_codes(cli):
    result = cli(["--help"])
    assert result.exit_code == 0
    assert "example" in result.output and "Exit codes" in result.output
    run_help = cli(["run", "--help"])
    assert "--int8" in run_help.output and "--max-accuracy-drop" in run_help.output


def test_output_on_a_read_only_filesystem_fails_cleanly(example, cli):
    result = cli([example["model"], "--runs", "2", "-o", "/proc/compress-out"])
    assert result.exit_code == 2
    assert "Cannot write" in result.output or "Cannot create" in result.output


def test_target_option_switches_the_int8_scheme_and_bad_options_are_named(example, tmp_path, cli):
    result = cli(
        [
            example["model"],
            "--int8",
            "--calib",
            example["calib"],
            "--runs",
            "3",
            "-O",
            "activation_type=int8",
            "-o",
            tmp_path / "s8",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "s8" / "report.json").read_text())
    assert "S8S8" in report["passes"]["int8"]["scheme"]
    bad = cli([example["model"], "-O", "workspace=1", "-o", tmp_path / "bad"])
    assert bad.exit_code == 2 and "has no option 'workspace'" in bad.output
    bad = cli([example["model"], "-O", "activation_type=int4", "-o", tmp_path / "bad"])
    assert bad.exit_code == 2 and "uint8 or int8" in bad.output


def test_static_batch_pt2_is_calibrated_and_evaluated_sample_by_sample(
    example, example_module, tmp_path, cli
):
    import torch

    x = torch.zeros(1, 1, 8, 8)
    torch.export.save(torch.export.export(example_module, (x,)), str(tmp_path / "static.pt2"))
    result = cli(
        [
            tmp_path / "static.pt2",
            "--int8",
            "--calib",
            example["calib"],
            "--calib-samples",
            "40",
            "--eval",
            example["eval"],
            "--runs",
            "3",
            "--max-accuracy-drop",
            "1",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["passes"]["int8"]["calibration_samples"] == 40
    assert report["compressed"]["eval_samples"] == 361


def test_torchscript_and_onnx_inputs_take_shapes_from_data(example, example_module, tmp_path, cli):
    import torch

    torch.jit.trace(example_module, torch.zeros(2, 1, 8, 8)).save(str(tmp_path / "m.pt"))
    result = cli(
        [tmp_path / "m.pt", "--eval", example["eval"], "--runs", "3", "-o", tmp_path / "ts"]
    )
    assert result.exit_code == 0, result.output
    onnx_model = tmp_path / "ts" / "model.onnx"
    result = cli(
        [
            onnx_model,
            "--int8",
            "--calib",
            example["calib"],
            "--eval",
            example["eval"],
            "--runs",
            "3",
            "-o",
            tmp_path / "from_onnx",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "from_onnx" / "report.json").read_text())
    assert report["baseline"]["runtime"] == "onnxruntime"
    assert report["baseline"]["accuracy"] - report["compressed"]["accuracy"] <= 0.01


def test_two_precisions_and_zero_calibration_samples_are_rejected(example, tmp_path, cli):
    both = cli([example["model"], "--int8", "--fp16", "-o", tmp_path / "o"])
    assert both.exit_code == 2 and "Choose one precision" in both.output
    zero = cli(
        [
            example["model"],
            "--int8",
            "--calib",
            example["calib"],
            "--calib-samples",
            "0",
            "-o",
            tmp_path / "o",
        ]
    )
    assert zero.exit_code == 2 and "--calib-samples" in zero.output
    fid = cli([example["model"], "--min-fidelity", "0.99", "-o", tmp_path / "o"])
    assert fid.exit_code == 2 and "--eval" in fid.output
    assert not (tmp_path / "o").exists()
