"""Output files the user names (debug --json/--html, verify --json/--junit, package -o) are never
written through a planted link, never onto a pipe or device, and two flags never share a file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from compressor.report.staging import staged_file
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

SECRET = "root:x:0:0\n"


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    """A folder outside the working one, holding a file a link will point at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_text(SECRET)
    return folder


def _plant(path: Path, outside: Path, kind: str) -> None:
    path.symlink_to(outside / ("passwd" if kind == "existing" else "created-by-compress"))


def _debug(digits: dict, *flags: object):
    return run_cli("debug", digits["model"], "--calib", digits["calib"], *flags)


@pytest.mark.parametrize("kind", ["existing", "dangling"])
@pytest.mark.parametrize("flag, name", [("--json", "layers.json"), ("--html", "layers.html")])
def test_debug_output_through_a_planted_link_is_refused(
    digits, tmp_path, outside, flag, name, kind
):
    work = tmp_path / "work"
    work.mkdir()
    _plant(work / name, outside, kind)
    before = snapshot(tmp_path)
    result = _debug(digits, flag, work / name)
    assert_clean_refusal(result, 2, flag, "symbolic link")
    assert snapshot(tmp_path) == before
    assert (outside / "passwd").read_text() == SECRET
    assert not (outside / "created-by-compress").exists()


def test_debug_json_and_html_naming_one_file_are_refused(digits, tmp_path):
    before = snapshot(tmp_path)
    result = _debug(digits, "--json", tmp_path / "out.txt", "--html", tmp_path / "out.txt")
    assert_clean_refusal(result, 2, "--json and --html both name")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flag", ["--json", "--html"])
def test_debug_output_onto_a_fifo_is_refused(digits, tmp_path, flag):
    fifo = tmp_path / ("out.json" if flag == "--json" else "out.html")
    os.mkfifo(fifo)
    result = _debug(digits, flag, fifo)
    assert_clean_refusal(result, 2, "not a regular file")


@pytest.mark.parametrize("kind", ["existing", "dangling"])
@pytest.mark.parametrize("flag, name", [("--json", "v.json"), ("--junit", "v.xml")])
def test_verify_outputs_through_a_planted_link_are_refused(
    compressed, digits, tmp_path, outside, flag, name, kind
):
    _plant(tmp_path / name, outside, kind)
    before = snapshot(tmp_path)
    result = run_cli(
        "verify", compressed / "model.onnx", "--baseline", digits["model"], flag, tmp_path / name
    )
    assert_clean_refusal(result, 2, flag, "symbolic link")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["existing", "dangling"])
def test_a_bundle_through_a_planted_link_is_refused(compressed, tmp_path, outside, kind):
    run_dir = Path(shutil.copytree(compressed, tmp_path / "out"))
    _plant(tmp_path / "b.tar.gz", outside, kind)
    before = snapshot(tmp_path)
    result = run_cli("package", run_dir, "-o", tmp_path / "b.tar.gz")
    assert_clean_refusal(result, 2, "--output", "symbolic link")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["existing", "dangling"])
def test_a_link_planted_after_the_checks_is_replaced_not_followed(tmp_path, outside, kind):
    """The race the up-front check cannot close: the staged write renames over the link."""
    target = tmp_path / "layers.json"
    _plant(target, outside, kind)
    with staged_file(target) as out:
        out.write(b"{}")
    assert not target.is_symlink() and target.read_text() == "{}"
    assert (outside / "passwd").read_text() == SECRET
    assert not (outside / "created-by-compress").exists()


def test_example_refuses_links_in_its_folder(tmp_path, outside):
    folder = tmp_path / "ex"
    folder.mkdir()
    (folder / "model.pt2").symlink_to(outside / "passwd")
    before = snapshot(tmp_path)
    result = run_cli("example", "--dir", folder)
    assert_clean_refusal(result, 2, "model.pt2")
    assert snapshot(tmp_path) == before
