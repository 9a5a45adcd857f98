"""Package bundles: no links followed, no bundle inside its own folder, duplicates caught."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot


@pytest.fixture()
def run_dir(compressed: Path, tmp_path: Path) -> Path:
    """A private copy of a real compress output folder."""
    return Path(shutil.copytree(compressed, tmp_path / "out"))


@pytest.mark.parametrize("link", ["file", "folder", "dangling"])
def test_links_in_the_folder_are_refused_not_followed(run_dir, tmp_path, link):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0")
    source = {"file": secret / "passwd", "folder": secret, "dangling": tmp_path / "gone"}[link]
    (run_dir / "labels.txt").symlink_to(source)
    before = snapshot(tmp_path)
    result = run_cli("package", run_dir, "-o", tmp_path / "bundle.tar.gz")
    assert_clean_refusal(result, 2, "symbolic link", "labels.txt")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["bundle.tar.gz", "sub/bundle.tar.gz"])
def test_a_bundle_inside_the_folder_it_packages_is_refused(run_dir, where):
    before = snapshot(run_dir)
    result = run_cli("package", run_dir, "-o", run_dir / where)
    assert_clean_refusal(result, 2, "inside the folder it packages")
    assert snapshot(run_dir) == before


def _tar_with(members: list[tuple[str, bytes]], path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_check_reports_duplicate_member_names(run_dir, tmp_path):
    bundle = tmp_path / "good.tar.gz"
    assert run_cli("package", run_dir, "-o", bundle).exit_code == 0
    with tarfile.open(bundle) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    model = next(name for name, _ in members if name.endswith(".onnx"))
    evil = _tar_with([*members, (model, b"a different model")], tmp_path / "dup.tar.gz")
    result = run_cli("package", "--check", evil)
    assert result.exit_code == 1
    assert f"{model}: appears twice" in result.output and "Traceback" not in result.output


def test_check_on_a_folder_says_what_to_pass(run_dir):
    result = run_cli("package", "--check", run_dir)
    assert_clean_refusal(result, 2, "is a folder", "compress package")


def test_check_on_random_bytes_is_a_failed_check_not_a_crash(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    result = run_cli("package", "--check", junk)
    assert result.exit_code == 1 and "not a readable" in result.output
    assert "Traceback" not in result.output
