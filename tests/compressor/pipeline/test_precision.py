"""compressor/pipeline/precision.py: calibration batches that histogram methods can use at any count."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_works_with_any_sample_count(example, tmp_path, method, cli):
    result = cli(
        [
            example["model"],
            "--int8",
            "--calib",
            example["calib"],
            "--calib-samples",
            "179",
            "--calibration",
            method,
            "--runs",
            "2",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["passes"]["int8"]["calibration_samples"] == 179


def test_calibration_batches_are_equal_for_histograms():
    from compressor.pipeline.precision import calibration_batch

    assert calibration_batch("minmax", 179, None) == 16
    assert calibration_batch("entropy", 179, None) == 1
    assert calibration_batch("entropy", 180, None) == 15
    assert calibration_batch("percentile", 64, 4) == 4
