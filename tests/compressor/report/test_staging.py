"""Staged outputs: moved in on success only, never over the input, never into a foreign folder."""

from __future__ import annotations

import shutil

import pytest

from compressor.report.staging import staged_output


def test_staged_output_moves_files_in_on_success_only(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_output(out) as stage:
        (stage / "report.json").write_text("{}")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with staged_output(out) as stage:
        (stage / "report.json").write_text("{}")
    assert (out / "report.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_outputs_never_overwrite_the_input_model(example, tmp_path, cli):
    shutil.copy(example["model"], tmp_path / "model.pt2")
    before = (tmp_path / "model.pt2").read_bytes()
    result = cli([tmp_path / "model.pt2", "--runs", "2", "-o", tmp_path])
    assert result.exit_code == 2 and "inside the output folder" in result.output
    assert (tmp_path / "model.pt2").read_bytes() == before


def test_a_folder_of_foreign_files_is_not_an_output_folder(example, tmp_path, cli):
    (tmp_path / "notes.txt").write_text("mine")
    result = cli([example["model"], "--runs", "2", "-o", tmp_path])
    assert result.exit_code == 2 and "no earlier compress run" in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_rerun_into_the_same_folder_replaces_the_previous_outputs(example, tmp_path, cli):
    out = tmp_path / "o"
    args = [example["model"], "--no-default-floor", "--runs", "2", "-o", out]  # no data
    assert cli([*args, "-t", "tensorrt"]).exit_code == 0
    assert (out / "build_engine.py").exists()
    assert cli(args).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "recipe.toml", "report.json"]
