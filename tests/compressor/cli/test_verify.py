"""`compress verify`: exit codes, JUnit content and --against regressions on real runtimes."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from compressor.report.junit import failure_message, junit_tree
from compressor.report.staging import staged_file
from foundation.errors import OutputError
from tests.cli_runner import invoke_cli

FAST = ["--runs", "10", "--warmup", "2"]


def verify(example_run: dict, *args: str) -> tuple[int, str]:
    argv = ["verify", str(example_run["onnx"]), "--baseline", str(example_run["model"]), *FAST]
    result = invoke_cli([*argv, *args])
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
    floor = ["min_sqnr", "min_channel_sqnr", "max_collapse_share", "min_task_agreement"]
    assert list(found) == ["max_accuracy_drop", "max_size_mb", "min_fidelity", *floor]
    assert all(case.find("failure") is None for case in found.values())
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("7", "0")
    data = json.loads(report.read_text())
    sources = {b["name"]: b["source"] for b in data["budgets"]}
    assert sources == dict.fromkeys(
        ["max_accuracy_drop", "max_size_mb", "min_fidelity"], "flag"
    ) | (dict.fromkeys(floor, "default"))
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
    result = invoke_cli(["verify", example_run["onnx"]])
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


@pytest.mark.parametrize("which", ["model", "eval"])
def test_output_naming_an_input_is_refused_and_the_input_kept(
    example_run: dict, tmp_path: Path, which: str
) -> None:
    victim = tmp_path / f"copy-{example_run[which].name}"
    shutil.copyfile(example_run[which], victim)
    before = victim.read_bytes()
    argv = ["verify", str(example_run["onnx"]), "--baseline", str(example_run["model"]), *FAST]
    if which == "model":
        argv[3] = str(victim)
        argv += ["--eval", str(example_run["eval"])]
    else:
        argv += ["--eval", str(victim)]
    result = invoke_cli([*argv, "--junit", victim])
    assert result.exit_code == 2, result.output
    assert "also an input" in result.output
    assert victim.read_bytes() == before


def test_json_over_the_artifacts_own_report_is_refused(example_run: dict) -> None:
    report = example_run["out"] / "report.json"
    before = report.read_bytes()
    code, out = verify(example_run, "--json", str(report))
    assert code == 2 and "also an input" in out
    assert report.read_bytes() == before


def test_existing_foreign_file_is_not_overwritten(example_run: dict, tmp_path: Path) -> None:
    foreign = tmp_path / "notes.txt"
    foreign.write_text("mine")
    code, out = verify(example_run, "--junit", str(foreign))
    assert code == 2 and "not a .xml file" in out
    assert foreign.read_text() == "mine"
    code, out = verify(example_run, "--json", str(foreign))
    assert code == 2 and "not a .json file" in out


@pytest.mark.parametrize("option", ["--junit", "--json"])
def test_directory_output_is_a_usage_error_before_measuring(
    example_run: dict, tmp_path: Path, option: str
) -> None:
    code, out = verify(example_run, option, str(tmp_path))
    assert code == 2, out
    assert "is a directory" in out and "latency" not in out


def test_staged_file_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a directory"):
        with staged_file(tmp_path) as out:
            out.write(b"x")


def test_baseline_folder_is_measured_as_its_artifact_file(
    example_run: dict, tmp_path: Path
) -> None:
    report = tmp_path / "verify.json"
    argv = ["verify", str(example_run["onnx"]), "--baseline", str(example_run["out"]), *FAST]
    argv += ["--eval", str(example_run["eval"])]
    result = invoke_cli([*argv, "--json", report])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["baseline"]["size_bytes"] == example_run["onnx"].stat().st_size
    assert data["baseline"]["size_of"] == "model.onnx"
    assert data["model"] == str(example_run["onnx"])


def test_baseline_size_is_labelled_with_its_file(example_run: dict, tmp_path: Path) -> None:
    report = tmp_path / "verify.json"
    code, out = verify(example_run, "--json", str(report), "--no-default-floor")
    assert code == 0, out
    data = json.loads(report.read_text())
    assert data["baseline"]["size_of"] == "model.pt2"
    assert data["baseline"]["size_bytes"] == example_run["model"].stat().st_size
    assert any(
        "Baseline size is of model.pt2 (the baseline file itself)" in n for n in data["notes"]
    )


def test_without_eval_the_default_floor_is_not_measured_so_not_passed(example_run: dict) -> None:
    code, out = verify(example_run)
    assert code == 1, out
    assert "default_floor" in out and "FAILED" in out


def test_against_with_accuracy_but_no_eval_is_a_usage_error(example_run: dict) -> None:
    code, out = verify(example_run, "--against", str(example_run["out"] / "report.json"))
    assert code == 2, out
    assert "pass --eval DATA" in out


def test_against_with_accuracy_and_unlabelled_eval_is_a_usage_error(
    example_run: dict, tmp_path: Path
) -> None:
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, x=np.load(example_run["eval"])["x"])
    code, out = verify(
        example_run,
        *("--against", str(example_run["out"] / "report.json"), "--eval", str(unlabelled)),
    )
    assert code == 2, out
    assert "no 'labels' array" in out


def test_against_a_report_of_another_target_warns(
    example_run: dict, tflite_run: Path, tmp_path: Path
) -> None:
    report = tmp_path / "verify.json"
    code, out = verify(
        example_run,
        *("--eval", str(example_run["eval"]), "--against", str(tflite_run / "report.json")),
        *("--max-latency-regression-pct", "100000", "--max-size-regression-pct", "100000"),
        *("--max-accuracy-regression", "100", "--json", str(report)),
        *("--max-sqnr-regression-db", "1000"),  # the stored run is fp32, this one int8
    )
    assert code == 0, out
    notes = json.loads(report.read_text())["notes"]
    assert any("target tflite, this artifact for onnx" in n for n in notes), notes
    assert any("ran in litert/builtin, this run in onnxruntime" in n for n in notes), notes


def test_verify_keeps_the_recorded_resolver(example_run: dict, tflite_run: Path, tmp_path: Path):
    report = tmp_path / "verify.json"
    argv = ["verify", str(tflite_run), "--baseline", str(example_run["model"]), *FAST]
    argv += ["--eval", str(example_run["eval"])]
    result = invoke_cli([*argv, "--json", report])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["compressed"]["runtime"] == "litert/builtin"
    assert data["target"] == "tflite"


def test_verify_writes_the_proxy_runtime(
    example_run: dict, tensorrt_proxy_run: Path, tmp_path: Path
) -> None:
    report = tmp_path / "verify.json"
    argv = ["verify", str(tensorrt_proxy_run), "--baseline", str(example_run["model"]), *FAST]
    argv += ["--eval", str(example_run["eval"])]
    result = invoke_cli([*argv, "--json", report])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["compressed"]["proxy_for"] == "tensorrt"
    assert data["compressed"]["runtime"] == "onnxruntime"
    assert any("PROXY for tensorrt" in n for n in data["notes"])
