"""`package --check` on crafted bundles: bombs, device files, links and escaping names are refused
from each member's header, before it is read, with nothing extracted or staged anywhere.

The bombs are built cheaply: a tar header declaring 300 MB or 1 GiB followed by a few bytes is
what a reader meets first; nothing of that size is ever written.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest

from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

GOOD = b"model bytes"


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, link
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def _manifest(files: dict) -> bytes:
    return json.dumps({"format": "edge-compressor-bundle", "files": files}).encode()


def _listing(*names: str) -> dict:
    import hashlib

    return {n: {"sha256": hashlib.sha256(GOOD).hexdigest(), "size": len(GOOD)} for n in names}


def _bundle(path: Path, *members: bytes, end: bool = True) -> Path:
    raw = b"".join(members) + (b"\0" * tarfile.BLOCKSIZE * 2 if end else b"")
    path.write_bytes(gzip.compress(raw))
    return path


def _member(name: str, data: bytes) -> bytes:
    return _header(name, len(data)) + _padded(data)


def _check(bundle: Path, tmp_path: Path, *needles: str) -> None:
    before = snapshot(tmp_path)
    result = run_cli("package", "--check", bundle)
    assert_clean_refusal(result, 2, *needles)
    assert snapshot(tmp_path) == before  # nothing extracted, no staging left behind


def test_a_300_mb_manifest_is_refused_from_its_header(tmp_path):
    # The header declares 300 MB; only a few bytes follow (a reader that trusted it would read on).
    bomb = _bundle(
        tmp_path / "b.tar.gz", _header("manifest.json", 300 << 20) + b"{" * 512, end=False
    )
    _check(bomb, tmp_path, "manifest.json", "314,572,800 bytes")


def test_a_1_gib_member_is_refused_before_it_is_read(tmp_path):
    manifest = _manifest(_listing("model.onnx"))
    bomb = _bundle(
        tmp_path / "b.tar.gz",
        _member("manifest.json", manifest),
        _header("model.onnx", 1 << 30) + b"\0" * 4096,
        end=False,
    )
    _check(bomb, tmp_path, "'model.onnx'", "gzip bomb")


def test_a_real_gzip_bomb_is_refused_by_its_inflation(tmp_path):
    zeros = b"\0" * (80 << 20)  # 80 MiB of zeros gzip to about 80 KB
    manifest = _manifest({"zeros.bin": {"sha256": "0" * 64, "size": len(zeros)}})
    bomb = _bundle(
        tmp_path / "b.tar.gz", _member("manifest.json", manifest), _member("zeros.bin", zeros)
    )
    assert bomb.stat().st_size < 1 << 20
    _check(bomb, tmp_path, "zeros.bin", "100x")


@pytest.mark.parametrize(
    "kind, link, needle",
    [
        (tarfile.CHRTYPE, "", "not a regular file"),
        (tarfile.BLKTYPE, "", "not a regular file"),
        (tarfile.FIFOTYPE, "", "not a regular file"),
        (tarfile.SYMTYPE, "/etc/passwd", "not a regular file"),
        (tarfile.LNKTYPE, "manifest.json", "not a regular file"),
        (tarfile.DIRTYPE, "", "not a regular file"),
    ],
    ids=["char-device", "block-device", "fifo", "symlink", "hardlink", "folder"],
)
def test_members_that_are_not_files_are_refused(tmp_path, kind, link, needle):
    manifest = _manifest(_listing())
    bundle = _bundle(
        tmp_path / "b.tar.gz", _member("manifest.json", manifest), _header("dev", 0, kind, link)
    )
    _check(bundle, tmp_path, "'dev'", needle)


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "a/../../evil.txt",
        "/etc/evil.txt",
        "..\\..\\evil.txt",
        "C:evil.txt",
        "a//b.txt",
        "./evil.txt",
        "evil\n.txt",
    ],
)
def test_member_names_that_escape_or_confuse_an_extractor_are_refused(tmp_path, name):
    manifest = _manifest(_listing(name))
    bundle = _bundle(tmp_path / "b.tar.gz", _member("manifest.json", manifest), _member(name, GOOD))
    _check(bundle, tmp_path, "was not written by `compress package`")
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize(
    "files",
    [
        ["model.onnx"],
        [["model.onnx"]],
        {"model.onnx": None},
        {"model.onnx": "sha"},
        {"model.onnx": {"sha256": 5, "size": 11}},
        {"model.onnx": {"sha256": "0" * 64, "size": "11"}},
        {"model.onnx": {"sha256": "0" * 64, "size": True}},
        None,
        "files",
    ],
    ids=[
        "list",
        "unhashable",
        "null-entry",
        "text-entry",
        "int-sha",
        "text-size",
        "bool-size",
        "null",
        "text",
    ],
)
def test_a_manifest_whose_files_table_is_malformed_is_refused(tmp_path, files):
    manifest = json.dumps({"files": files}).encode()
    bundle = _bundle(
        tmp_path / "b.tar.gz", _member("manifest.json", manifest), _member("model.onnx", GOOD)
    )
    _check(bundle, tmp_path, "manifest.json", "'files'")


@pytest.mark.parametrize("content", [b"[" * 1000 + b"]" * 1000, b"[1, 2]", b"\xff\xfe"])
def test_a_manifest_that_is_not_a_json_object_is_refused(tmp_path, content):
    bundle = _bundle(tmp_path / "b.tar.gz", _member("manifest.json", content))
    _check(bundle, tmp_path, "manifest.json")


def test_a_well_formed_crafted_bundle_still_checks(tmp_path):
    bundle = _bundle(
        tmp_path / "b.tar.gz",
        _member("manifest.json", _manifest(_listing("model.onnx"))),
        _member("model.onnx", GOOD),
    )
    result = run_cli("package", "--check", bundle)
    assert result.exit_code == 0, result.output
    assert "1 files match" in result.output


def test_a_tampered_member_is_still_a_failed_check_not_a_refusal(tmp_path):
    bundle = _bundle(
        tmp_path / "b.tar.gz",
        _member("manifest.json", _manifest(_listing("model.onnx"))),
        _member("model.onnx", b"other bytes"),
    )
    result = run_cli("package", "--check", bundle)
    assert result.exit_code == 1 and "does not match" in result.output, result.output


def test_the_refusal_comes_from_the_header_not_the_body(tmp_path):
    """The 1 GiB member has no body at all: reading it would fail as an unreadable bundle
    (exit 1), so the exit-2 refusal shows the header alone decided."""
    manifest = _manifest(_listing("model.onnx"))
    raw = _member("manifest.json", manifest) + _header("model.onnx", 1 << 30)
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(gzip.compress(raw))  # the body is missing altogether
    _check(bundle, tmp_path, "gzip bomb")
