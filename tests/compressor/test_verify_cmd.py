"""`compress verify`: exit codes, JUnit content and --against regressions on real runtimes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from compressor.cli import main
from compressor.junit import failure_message, junit_tree

FAST = ["--runs", "10", "--warmup", "2"]


def verify(example_run: dict, *args: str) -> tuple[int, str]:
    argv = ["verify", str(example_run["onnx"]), "--baseline", str(example_run["model"]), *FAST]
    result = CliRunner().invoke(main, [*argv, *args])
    return result.exit_code, result.output


def cases(junit: Path) -> dict[str, ET.Element]:
    suite = ET.parse(junit).getroot().find("testsuite")
    return {case.get("name"): case for case in suite.iter("testcase")}


def test_budgets_met_exit_0_with_one_passing_testcase_each(example_run: dict, tmp_path: Path):
    junit, report = tmp_path / "ci" / "junit.xml", tmp_path / "verify.json"
    code, out = verify(
        example_run,
        *("--eval", str(example_run["eval"]), "--max-accuracy-drop", "2"),
        *("--min-fidelity", "0.99", "--max-size-mb", "1"),
        *("--junit", str(junit), "--json", str(report)),
    )
    assert code == 0, out
    found = cases(junit)
    assert list(found) == ["max_accuracy_drop", "max_size_mb", "min_fidelity"]
    assert all(case.find("failure") is None for case in found.values())
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "0")
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["precision"] == "int8" and data["target"] == "onnx"
    assert data["baseline"]["runtime"] == "torch"
    assert data["compressed"]["runtime"] == "onnxruntime"
    assert data["compressed"]["accuracy"] > 0.9
    assert data["compressed"]["fidelity"]["cosine"] > 0.99


def test_failed_budgets_exit_1_and_carry_value_and_limit(example_run: dict, tmp_path: Path):
    junit, report = tmp_path / "junit.xml", tmp_path / "verify.json"
    code, out = verify(
        example_run,
        *("--max-latency-ms", "0.000001", "--max-size-mb", "0.01"),
        *("--junit", str(junit), "--json", str(report)),
    )
    assert code == 1
    assert "FAIL" in out
    measured = {b["name"]: b for b in json.loads(report.read_text())["budgets"]}
    found = cases(junit)
    for name, limit in (("max_latency_ms", "1e-06"), ("max_size_mb", "0.01")):
        failure = found[name].find("failure")
        assert failure is not None
        message = failure.get("message")
        assert f"measured {measured[name]['value']}" in message
        assert f"limit {limit}" in message and name in message
    size_mb = example_run["onnx"].stat().st_size / 1e6
    assert measured["max_size_mb"]["value"] == pytest.approx(size_mb, rel=1e-4)


def test_against_stored_report_passes_then_catches_regressions(example_run: dict, tmp_path: Path):
    stored = example_run["out"] / "report.json"
    junit = tmp_path / "junit.xml"
    code, out = verify(
        example_run,
        *("--eval", str(example_run["eval"]), "--against", str(stored)),
        *("--max-latency-regression-pct", "1000", "--junit", str(junit)),
    )
    assert code == 0, out
    regression_names = {
        "max_accuracy_regression",
        "max_latency_regression_pct",
        "max_size_regression_pct",
    }
    assert regression_names <= set(cases(junit))
    old = json.loads(stored.read_text())
    better = dict(old)
    better["compressed"] = {
        **old["compressed"],
        "accuracy": old["compressed"]["accuracy"] + 0.05,
        "size_bytes": old["compressed"]["size_bytes"] // 2,
        "latency_ms": {**old["compressed"]["latency_ms"], "p50": 1e-6},
    }
    release = tmp_path / "release-report.json"
    release.write_text(json.dumps(better))
    code, out = verify(
        example_run,
        *("--eval", str(example_run["eval"]), "--against", str(release), "--junit", str(junit)),
    )
    assert code == 1, out
    found = cases(junit)
    for name in regression_names:
        assert found[name].find("failure") is not None, name
    message = found["max_accuracy_regression"].find("failure").get("message")
    assert "measured 5.0 points > limit 1.0 points" in message
    assert "measured 100.0" in found["max_size_regression_pct"].find("failure").get("message")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-accuracy-drop", "1"], "needs labelled evaluation data"),
        (["--eval", "nope.npz"], "does not exist"),
        (["--against", "nope.json"], "does not exist"),
        (["--against", "{eval}"], "not valid JSON"),
        (["--runs", "0"], "--runs"),
    ],
)
def test_bad_usage_exits_2(example_run: dict, args: list[str], message: str) -> None:
    code, out = verify(example_run, *(a.format(eval=example_run["eval"]) for a in args))
    assert code == 2
    assert message in out


def test_missing_baseline_is_a_usage_error(example_run: dict) -> None:
    result = CliRunner().invoke(main, ["verify", str(example_run["onnx"])])
    assert result.exit_code == 2 and "--baseline" in result.output


def test_unmeasured_budget_and_empty_budget_list_in_junit() -> None:
    budget = {"name": "max_accuracy_drop", "limit": 1.0, "value": None, "unit": "points"}
    budget |= {"passed": False, "note": "no labels"}
    assert (
        failure_message(budget) == "max_accuracy_drop: not measured (no labels); limit 1.0 points"
    )
    tree = junit_tree({"artifact": "m.onnx", "budgets": []}, 0.5)
    (case,) = tree.getroot().iter("testcase")
    assert case.get("name") == "artifact_runs" and case.find("failure") is None
