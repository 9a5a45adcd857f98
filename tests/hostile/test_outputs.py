"""Outputs: paths read from an earlier run are untrusted; replacing a run is all-or-nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from compressor.report.staging import replace_outputs
from foundation.errors import OutputError
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

EVIL_NAMES = ["..", ".", "", "/etc/passwd", "../sibling.txt", ".hidden", "a/../..", 7, None]


@pytest.mark.parametrize("name", EVIL_NAMES, ids=repr)
def test_report_naming_a_path_outside_the_output_folder_is_refused(digits, tmp_path, name):
    out = tmp_path / "runs" / "out"
    out.mkdir(parents=True)
    (tmp_path / "runs" / "sibling.txt").write_text("precious")
    (out / ".hidden").write_text("hidden")
    (out / "report.json").write_text(json.dumps({"artifact": name}))
    before = snapshot(tmp_path)
    result = run_cli(digits["model"], "--runs", "2", "-o", out)
    assert_clean_refusal(result, 2, "not a plain file name")
    assert snapshot(tmp_path) == before


def test_extra_files_are_checked_like_the_artifact(digits, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"artifact": "m.onnx", "extra_files": [".."]}))
    before = snapshot(tmp_path)
    assert_clean_refusal(run_cli(digits["model"], "--runs", "2", "-o", out), 2, "'..'")
    assert snapshot(tmp_path) == before


def test_an_earlier_artifact_that_links_to_a_folder_is_replaced_not_followed(digits, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    assert (
        run_cli(
            digits["model"], "--no-default-floor", "--runs", "2", "--warmup", "1", "-o", out
        ).exit_code
        == 0
    )
    (out / "model.onnx").unlink()
    (out / "model.onnx").symlink_to(elsewhere, target_is_directory=True)
    result = run_cli(
        digits["model"], "--no-default-floor", "--runs", "2", "--warmup", "1", "-o", out
    )
    assert result.exit_code == 0, result.output
    assert (elsewhere / "keep.txt").read_text() == "mine"
    assert (out / "model.onnx").is_file() and not (out / "model.onnx").is_symlink()


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_broken_symlink_as_output_folder_creates_nothing_elsewhere(digits, tmp_path, kind):
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "nowhere" / "deeper" if kind == "dangling" else out)
    before = snapshot(tmp_path)
    assert_clean_refusal(run_cli(digits["model"], "--runs", "2", "-o", out), 2, "symbolic link")
    assert snapshot(tmp_path) == before


def test_a_failed_move_puts_the_earlier_outputs_back(tmp_path, monkeypatch):
    out, stage = tmp_path / "out", tmp_path / "stage"
    out.mkdir()
    stage.mkdir()
    for name in ("model.onnx", "report.json", "recipe.toml"):
        (out / name).write_text(f"old {name}")
        (stage / name).write_text(f"new {name}")
    (out / "old-extra.bin").write_text("old extra")
    before = snapshot(out)
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(src).name == "report.json" and Path(src).parent == stage:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr("compressor.report.staging.os.replace", failing_replace)
    stale = [out / "model.onnx", out / "old-extra.bin", out / "report.json"]
    with pytest.raises(OutputError, match="earlier outputs were put back"):
        replace_outputs(stage, out, stale)
    assert snapshot(out) == before


def test_a_successful_replace_drops_files_the_new_run_no_longer_writes(tmp_path):
    out, stage = tmp_path / "out", tmp_path / "stage"
    out.mkdir()
    stage.mkdir()
    (out / "old.engine").write_text("old")
    (out / "report.json").write_text("old")
    (stage / "report.json").write_text("new")
    replace_outputs(stage, out, [out / "old.engine", out / "report.json"])
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert (out / "report.json").read_text() == "new"


@pytest.mark.parametrize("mine", ["model.pt2", "notes.txt"])
def test_example_refuses_a_folder_of_the_users_files(tmp_path, mine):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / mine).write_text("the user's own file")
    before = snapshot(tmp_path)
    result = run_cli("example", "--dir", folder, "--epochs", "1")
    assert_clean_refusal(result, 2, mine, "Choose a new or empty --dir")
    assert snapshot(tmp_path) == before


def test_example_reclaims_its_own_earlier_folder(tmp_path):
    from compressor.model.example import MARKER, claim_example_folder

    folder = tmp_path / "ex"
    claim_example_folder(folder)
    for name in ("model.pt2", "calib.npz", "eval.npz"):
        (folder / name).write_text("from an earlier example")
    (folder / "out").mkdir()
    claim_example_folder(folder)  # a rerun: no error
    assert (folder / MARKER).is_file()
