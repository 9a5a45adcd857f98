"""The typed Report: run_pipeline and run_verify return it, and its JSON keeps schema 2's form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.judging.sections import Section
from compressor.report import strict_json
from compressor.report.schema import Report
from compressor.verify import VerifyRequest, run_verify
from tests.cli_runner import invoke_cli

GOLDEN = json.loads((Path(__file__).parents[1] / "data" / "report_keys.json").read_text())


def key_paths(node: object, prefix: str = "") -> list[str]:
    """Every key path in order; a list of objects by its first row."""
    if isinstance(node, dict):
        out = []
        for key, value in node.items():
            out += [f"{prefix}/{key}", *key_paths(value, f"{prefix}/{key}")]
        return out
    if isinstance(node, list) and node and isinstance(node[0], dict):
        return key_paths(node[0], prefix + "[]")
    return []


def test_report_json_keeps_the_schema_2_structure(tflite_int8_run: tuple) -> None:
    report, out = tflite_int8_run
    written = (out / "report.json").read_text()
    assert written == strict_json.dumps(report.to_json_dict(), indent=2) + "\n"
    stored = json.loads(written)
    assert key_paths(stored) == GOLDEN["compress_tflite_int8"]["keys"]
    assert [b["name"] for b in stored["budgets"]] == GOLDEN["compress_tflite_int8"]["budgets"]


def test_pipeline_returns_typed_sections(tflite_int8_run: tuple) -> None:
    report, out = tflite_int8_run
    assert isinstance(report, Report) and isinstance(report.compressed, Section)
    assert report.passed == all(b.passed for b in report.budgets)
    assert report.compressed.outputs[0].name == report.compressed.fidelity["worst_output"]
    assert report.fp32_reference.latency.p50 > 0 and report.qdq_reference is not None
    assert (out / report.artifact).is_file()
    assert {b.source for b in report.budgets} == {"recipe", "default"}
    with pytest.raises(AttributeError):
        report.passed = True  # frozen


def test_verify_json_keeps_the_schema_2_structure(
    tflite_int8_run: tuple, example: dict[str, Path], tmp_path: Path
) -> None:
    _, out = tflite_int8_run
    argv = ["verify", str(out / "model.tflite"), "--baseline", str(example["model"])]
    argv += ["--eval", str(example["eval"]), "--runs", "5", "--against", str(out / "report.json")]
    result = invoke_cli([*argv, "--json", tmp_path / "v.json"])
    assert result.exit_code in (0, 1), result.output
    stored = json.loads((tmp_path / "v.json").read_text())
    assert key_paths(stored) == GOLDEN["verify_json_against"]["keys"]
    assert [b["name"] for b in stored["budgets"]] == GOLDEN["verify_json_against"]["budgets"]
    assert stored["passed"] == (result.exit_code == 0)
    typed = Report.from_json_dict(stored)
    assert typed.command == "verify" and typed.to_json_dict() == stored


def test_run_verify_returns_a_typed_report(
    tflite_int8_run: tuple, example: dict[str, Path]
) -> None:
    _, out = tflite_int8_run
    request = VerifyRequest(
        out / "model.tflite", baseline=example["model"], eval=str(example["eval"]), runs=5
    )
    report = run_verify(request)
    assert report.command == "verify" and report.against is None
    assert report.baseline.size_of == Path(example["model"]).name
    assert report.compressed.outputs and report.compressed.latency.runs == 5
    assert report.passed == all(b.passed for b in report.budgets)
    assert report.to_json_dict()["baseline"]["size_of"] == report.baseline.size_of
