"""verify --against untrusted reports; image folders wherever data is taken; clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.hostile.cli_harness import assert_clean_refusal, run_cli


def _stored(compressed: Path, tmp_path: Path, edit) -> Path:
    report = json.loads((compressed / "report.json").read_text())
    edit(report)
    path = tmp_path / "stored.json"
    path.write_text(json.dumps(report))
    return path


def _verify(compressed: Path, digits: dict, *extra: object):
    return run_cli(
        "verify", compressed / "model.onnx", "--baseline", digits["model"], "--runs", "3", *extra
    )


@pytest.mark.parametrize(
    "field, value",
    [("size_bytes", "big"), ("accuracy", "high"), ("latency_ms", "fast")],
)
def test_a_stored_report_with_text_figures_is_a_usage_error(
    compressed, digits, tmp_path, field, value
):
    def edit(report):
        report["compressed"][field] = value

    result = _verify(compressed, digits, "--against", _stored(compressed, tmp_path, edit))
    assert_clean_refusal(result, 2, "not a table" if field == "latency_ms" else "not a number")


@pytest.mark.parametrize("value", ["missing", 0, None])
@pytest.mark.parametrize("figure", ["size_bytes", "p50"])
def test_unusable_stored_figures_fail_their_testcase_by_name(
    compressed, digits, tmp_path, figure, value
):
    def edit(report):
        section = (
            report["compressed"] if figure == "size_bytes" else report["compressed"]["latency_ms"]
        )
        if value == "missing":
            section.pop(figure)
        else:
            section[figure] = value

    junit = tmp_path / "junit.xml"
    stored = _stored(compressed, tmp_path, edit)
    result = _verify(compressed, digits, "--against", stored, "--junit", junit)
    assert result.exit_code == 1, result.output
    name = "max_size_regression_pct" if figure == "size_bytes" else "max_latency_regression_pct"
    xml = junit.read_text()
    assert name in xml and "no usable figure" in xml


def _image_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(3):
            pixels = (rng.random((16, 16)) * 255).astype("uint8")
            Image.fromarray(pixels).save(tmp_path / "images" / cls / f"{i}.png")
    return tmp_path / "images"


def test_image_folders_work_in_verify_and_bench_with_shapes_from_the_model(
    compressed, digits, tmp_path
):
    images = _image_folder(tmp_path)
    verify = _verify(compressed, digits, "--eval", images, "--json", tmp_path / "v.json")
    assert verify.exit_code == 0, verify.output
    assert json.loads((tmp_path / "v.json").read_text())["compressed"]["accuracy"] is not None
    for artifact in (digits["model"], compressed / "model.onnx"):
        bench = run_cli("bench", artifact, "--data", images, "--runs", "3", "--json")
        assert bench.exit_code == 0, bench.output
        assert '"p50"' in bench.output


def test_image_folders_take_input_shape_when_the_model_records_none(digits, tmp_path):
    import torch

    from compressor.model.example import DigitsCNN

    script = tmp_path / "digits.pt"
    torch.jit.save(torch.jit.script(DigitsCNN().eval()), str(script))
    images = _image_folder(tmp_path)
    refused = run_cli("bench", script, "--data", images, "--runs", "2")
    assert_clean_refusal(refused, 2, "--input-shape")
    given = run_cli("bench", script, "--data", images, "--input-shape", "x:1x1x8x8", "--runs", "2")
    assert given.exit_code == 0, given.output


def test_an_empty_recipe_says_a_model_is_missing(tmp_path):
    recipe = tmp_path / "empty.toml"
    recipe.write_text("")
    assert_clean_refusal(run_cli("--recipe", recipe), 2, "No model given")


def test_an_untouched_stored_report_is_compared_figure_by_figure(compressed, digits, tmp_path):
    """The control case of the edits above: the same artifact shows no size regression."""
    out = tmp_path / "v.json"
    result = _verify(compressed, digits, "--against", compressed / "report.json", "--json", out)
    assert result.exit_code in (0, 1), result.output  # latency may vary on a shared machine
    budgets = {b["name"]: b for b in json.loads(out.read_text())["budgets"]}
    assert budgets["max_size_regression_pct"]["value"] == 0.0
    assert budgets["max_size_regression_pct"]["passed"]
    assert budgets["max_latency_regression_pct"]["value"] is not None


def test_verify_takes_the_preprocessing_of_the_run(compressed, digits, tmp_path):
    images = _image_folder(tmp_path)
    plain = tmp_path / "plain.json"
    assert _verify(compressed, digits, "--eval", images, "--json", plain).exit_code in (0, 1)
    mean = tmp_path / "mean.json"
    args = ("--eval", images, "--preprocess", "mean=0.5,std=0.25", "--json", mean)
    result = _verify(compressed, digits, *args)
    assert result.exit_code in (0, 1), result.output
    first = json.loads(plain.read_text())["baseline"]["latency_ms"]
    second = json.loads(mean.read_text())["baseline"]["latency_ms"]
    assert first["runs"] == second["runs"] == 3
    bad = _verify(compressed, digits, "--eval", images, "--preprocess", "mean=1,2,3")
    assert_clean_refusal(bad, 2, "mean")


def test_bench_data_options_need_data(digits):
    result = run_cli("bench", digits["model"], "--batch-axis", "x:0")
    assert_clean_refusal(result, 2, "--data")


def test_against_a_report_of_another_model_is_refused(compressed, digits, tmp_path):
    first = tmp_path / "first.json"
    assert _verify(compressed, digits, "--eval", digits["eval"], "--json", first).exit_code == 0
    report = json.loads(first.read_text())
    assert report["compressed"]["outputs"]
    for output in report["compressed"]["outputs"]:
        output["shape"] = [*output["shape"][:-1], output["shape"][-1] + 5]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(report))
    result = _verify(compressed, digits, "--eval", digits["eval"], "--against", other)
    assert_clean_refusal(result, 2, "not a report of the same model")
