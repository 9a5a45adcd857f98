"""compressor/pipeline/verdict.py: the fp32 reference is lowered for, and run in, the target's runtime."""

from __future__ import annotations

import json


def test_the_fp32_reference_runs_in_the_target_runtime(example, tmp_path, cli):
    result = cli(
        [
            example["model"],
            "-t",
            "tflite",
            "--int8",
            "--calib",
            example["calib"],
            "--runs",
            "5",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["fp32_reference"]["runtime"] == report["compressed"]["runtime"]
    assert report["fp32_reference"]["runtime"].startswith("litert")
