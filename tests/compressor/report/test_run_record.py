"""Reading an earlier run: names from a record are untrusted, unreadable records read as empty
(or fail in plain words where the caller needs them), and report.json reads back typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.bundle.archive import find_model_file
from compressor.model.artifacts import resolve_artifact
from compressor.report import strict_json
from compressor.report.run_record import (
    artifact_record,
    is_plain_name,
    load_run,
    read_run,
    sibling_report,
)
from compressor.report.schema import Report
from foundation.errors import UsageError
from targets.registry import get_target


def _folder(tmp_path: Path, report: object, recipe: str | None = None) -> Path:
    folder = tmp_path / "run"
    folder.mkdir(parents=True)
    text = report if isinstance(report, str) else json.dumps(report)
    (folder / "report.json").write_text(text)
    if recipe is not None:
        (folder / "recipe.toml").write_text(recipe)
    return folder


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("model.onnx", True),
        ("model.onnx.data", True),
        ("../model.onnx", False),
        ("/etc/passwd", False),
        ("sub/model.onnx", False),
        ("sub\\model.onnx", False),
        (".hidden", False),
        ("..", False),
        ("", False),
        ("a\0b", False),
        (None, False),
        (3, False),
    ],
)
def test_only_plain_names_are_taken_from_a_record(name: object, plain: bool) -> None:
    assert is_plain_name(name) is plain


def test_a_name_leaving_the_folder_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "outside.onnx").write_bytes(b"not ours")
    folder = _folder(tmp_path, {"artifact": "../outside.onnx", "target": "onnx"})
    record = read_run(folder)
    assert record.artifact_name is None and record.artifact_file() is None
    with pytest.raises(UsageError, match="without a report.json naming its artifact"):
        resolve_artifact(folder)
    (folder / "model.onnx").write_bytes(b"x")
    assert find_model_file(folder, ["model.onnx", "report.json"]) == "model.onnx"


def test_unreadable_records_read_as_empty_but_load_refuses_them(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "{not json", recipe="target = [")
    record = read_run(folder)
    assert record.report == {} and record.recipe is None and record.output_names() is None
    with pytest.raises(UsageError, match="report.json' is not valid JSON"):
        load_run(folder)
    (folder / "report.json").write_text("[1, 2]")
    assert read_run(folder).report == {}
    with pytest.raises(UsageError, match="not a compress report"):
        load_run(folder)
    (folder / "report.json").write_text("{}")
    with pytest.raises(UsageError, match="recipe.toml' is not valid TOML"):
        load_run(folder)
    assert read_run(tmp_path / "missing").report == {}


def test_output_names_and_files(tmp_path: Path) -> None:
    report = {"artifact": "model.tflite", "extra_files": ["weights.bin", "../secret"]}
    folder = _folder(tmp_path, report)
    (folder / "model.tflite").write_bytes(b"x")
    (folder / "weights.bin").write_bytes(b"y")
    record = read_run(folder)
    assert record.output_names() == ["model.tflite", "weights.bin", "../secret"]
    assert record.output_files() == [folder / "model.tflite", folder / "weights.bin"]
    assert (
        read_run(_folder(tmp_path / "b", {"artifact": "m", "extra_files": "m"})).output_names()
        is None
    )


def test_a_sibling_report_belongs_to_the_artifact_it_names(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"artifact": "model.tflite", "precision": "int8"})
    assert sibling_report(folder / "model.tflite")["precision"] == "int8"
    assert sibling_report(folder / "other.tflite") == {}
    assert artifact_record(folder / "other.tflite") is None


def test_target_options_come_from_the_recipe_else_the_artifact_info(tmp_path: Path) -> None:
    tflite = get_target("tflite")
    info = {"resolver": "builtin", "runtime": "litert", "op_counts": {"CONV_2D": 1}}
    recipe = 'target = "tflite"\n[target_options]\nresolver = "default"\n'
    folder = _folder(tmp_path, {"artifact": "m.tflite", "artifact_info": info}, recipe)
    assert read_run(folder).target_options(tflite) == {"resolver": "default"}
    (folder / "recipe.toml").write_text('target = "onnx"\n')
    assert read_run(folder).target_options(tflite) == {"resolver": "builtin"}
    # an edited report whose artifact_info is not a table: the target's defaults, no crash
    edited = _folder(tmp_path / "edited", {"artifact": "m.tflite", "artifact_info": [1]}, "x = [")
    assert read_run(edited).target_options(tflite) == {}


def test_report_json_reads_back_typed(tflite_int8_run: tuple) -> None:
    report, out = tflite_int8_run
    stored = json.loads((out / "report.json").read_text())
    typed = read_run(out).typed_report()
    assert isinstance(typed, Report) and typed.command == "compress"
    assert typed.to_json_dict() == stored
    assert (
        strict_json.dumps(typed.to_json_dict(), indent=2) + "\n"
        == (out / "report.json").read_text()
    )
    assert typed.compressed.outputs[0].fidelity == report.compressed.outputs[0].fidelity
    assert typed.qdq_reference.outputs and typed.budgets == report.budgets
    edited = _folder(out.parent / "edited", {**stored, "compressed": {"runtime": "x"}})
    assert read_run(edited).typed_report() is None


def test_a_strict_read_refuses_non_text_target_precision_or_artifact(tmp_path: Path) -> None:
    for key in ("target", "precision", "artifact"):
        folder = _folder(tmp_path / key, {"artifact": "m.onnx", "target": "onnx", key: 5}, None)
        with pytest.raises(UsageError, match=f"{key} = 5, not text"):
            load_run(folder)
