"""Nonsense budgets and settings exit 2 before any work: nothing is written, nothing is loaded."""

from __future__ import annotations

import json
import math

import pytest

from compressor.report.strict_json import dumps
from foundation.resources import max_threads
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

BAD_COMPRESS_FLAGS = [
    ["--max-accuracy-drop", "nan"],
    ["--max-accuracy-drop", "-1"],
    ["--max-accuracy-drop", "101"],
    ["--max-accuracy-drop", "inf"],
    ["--min-fidelity", "0"],
    ["--min-fidelity", "1.5"],
    ["--min-fidelity", "nan"],
    ["--max-size-mb", "0"],
    ["--max-size-mb", "-3"],
    ["--max-latency-ms", "0"],
    ["--max-latency-ms", "nan"],
    ["--lr", "nan"],
    ["--lr", "-0.1"],
    ["--temperature", "nan"],
    ["--temperature", "0"],
    ["--alpha", "nan"],
    ["--alpha", "2"],
    ["--qat-lr", "nan"],
    ["--qat-epochs", "0"],
    ["--qat-time", "inf"],
    ["--threads", str(max_threads() + 1)],
    ["--threads", "0"],
]


@pytest.mark.parametrize("flags", BAD_COMPRESS_FLAGS, ids=" ".join)
def test_compress_refuses_nonsense_settings_before_any_work(digits, tmp_path, flags):
    before = snapshot(tmp_path)
    result = run_cli(digits["model"], "--eval", digits["eval"], *flags, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, flags[0])
    assert "export" not in result.output  # refused before the first stage
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "flags", [["--max-size-mb", "0"], ["--min-fidelity", "nan"], ["--threads", "100000"]]
)
def test_verify_refuses_nonsense_budgets(digits, flags):
    result = run_cli("verify", digits["model"], "--baseline", digits["model"], *flags)
    assert_clean_refusal(result, 2, flags[0])


def test_bench_refuses_absurd_thread_counts(digits):
    result = run_cli("bench", digits["model"], "--threads", "100000")
    assert_clean_refusal(result, 2, "--threads")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "[0.5, NaN]"])
def test_package_preprocess_must_be_finite(compressed, tmp_path, value):
    result = run_cli(
        "package", compressed, "--preprocess", f"scale={value}", "-o", tmp_path / "b.tgz"
    )
    assert_clean_refusal(result, 2, "finite")
    assert not (tmp_path / "b.tgz").exists()


def test_reports_are_strict_json_even_with_non_finite_figures():
    text = dumps({"sqnr_db": math.inf, "cosine": math.nan, "nested": [1.0, -math.inf]})
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"sqnr_db": None, "cosine": None, "nested": [1.0, None]}


def test_a_written_report_has_no_non_finite_literals(compressed):
    text = (compressed / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in report.json"))


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--max-sqnr-regression-db", "nan"),
        ("--max-sqnr-regression-db", "-3"),
        ("--max-accuracy-regression", "-1"),
        ("--max-latency-regression-pct", "-5"),
        ("--max-size-regression-pct", "-50"),
    ],
)
def test_verify_refuses_nonsense_regression_limits(digits, compressed, flag, value):
    args = ["verify", compressed / "model.onnx", "--baseline", digits["model"]]
    result = run_cli(*args, "--against", compressed / "report.json", flag, value)
    assert_clean_refusal(result, 2, flag)


@pytest.mark.parametrize(
    "table, needle",
    [
        ('[task]\nlinear_1 = "bogus"\n', "task.linear_1"),
        ('input_shapes = {x = "1x1x8x8"}\n', "input_shapes.x"),
        ("input_shapes = {x = [1, true, 8, 8]}\n", "input_shapes.x"),
        ("batch_axes = {x = -1}\n", "batch_axes.x"),
    ],
    ids=["task-kind", "shape-string", "shape-bool", "negative-axis"],
)
def test_recipe_tables_are_checked_value_by_value(digits, tmp_path, table, needle):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\n{table}')
    before = snapshot(tmp_path)
    assert_clean_refusal(run_cli("--recipe", recipe, "-o", tmp_path / "out"), 2, needle)
    assert snapshot(tmp_path) == before


def test_preprocess_without_an_image_folder_is_refused(digits, tmp_path):
    args = [digits["model"], "--eval", digits["eval"], "--preprocess", "mean=1,2,std=3"]
    result = run_cli(*args, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "applies to image folders only")
    assert not (tmp_path / "out").exists()


def test_a_sweep_that_makes_no_job_is_a_bad_sweep_file(digits, tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'[[models]]\nname = "d"\nmodel = "{digits["model"]}"\n'
        '[grid]\ntargets = ["onnx"]\nprecisions = ["int4"]\n'
    )
    result = run_cli("sweep", sweep, "-o", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 2, result.output
    assert "PASSED" not in result.output and "Traceback" not in result.output
