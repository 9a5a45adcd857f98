"""Every JSON/TOML file compress reads (recipes, sweep files, reports, --against, --preprocess,
manifests) is bounded: deep nesting, huge files, FIFOs and wrong top-level types exit 2 with
one message naming the file, before any work and without a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from compressor.trust.strict_read import MAX_DEPTH, MAX_DOCUMENT_BYTES
from tests.cli_runner import work_bound_s
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

DEEP = 1000


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) when a FIFO is opened and blocks."""

    def expire(*_: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s: a FIFO was opened")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "1" + "]" * depth


def _sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (a hole)."""
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


@pytest.fixture()
def run_dir(compressed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(compressed, tmp_path / "out"))


RECIPES = {
    "deep-array": lambda model: f'model = "{model}"\nexclude = ' + "[" * DEEP + "]" * DEEP,
    "deep-tables": lambda model: f'model = "{model}"\n[' + ".".join(["a"] * DEEP) + "]\n",
}


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_a_deep_recipe_is_refused(digits, tmp_path, kind):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPES[kind](digits["model"]))
    before = snapshot(tmp_path)
    result = run_cli("--recipe", recipe, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "r.toml", f"more than {MAX_DEPTH} levels")
    assert snapshot(tmp_path) == before


def test_a_huge_recipe_is_refused_before_it_is_read(digits, tmp_path):
    recipe = _sparse(tmp_path / "r.toml", 300 << 20)
    result = run_cli("--recipe", recipe, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "r.toml", f"{MAX_DOCUMENT_BYTES:,}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["recipe", "sweep"])
def test_a_fifo_as_recipe_or_sweep_file_is_refused_not_waited_on(tmp_path, command):
    fifo = tmp_path / "r.toml"
    os.mkfifo(fifo)
    args = ["--recipe", fifo] if command == "recipe" else ["sweep", fifo]
    with deadline(work_bound_s()):
        result = run_cli(*args, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "not a regular file")


def test_a_deep_sweep_file_is_refused(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text("[defaults]\nexclude = " + "[" * DEEP + "]" * DEEP + "\n")
    result = run_cli("sweep", sweep, "-o", tmp_path / "out", "--workers", "1")
    assert_clean_refusal(result, 2, "sweep.toml", "levels deep")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["bench", "package"])
@pytest.mark.parametrize("content", ["deep", "huge"])
def test_a_deep_or_huge_report_in_a_run_folder_is_refused(run_dir, tmp_path, command, content):
    report = run_dir / "report.json"
    if content == "deep":
        report.write_text('{"artifact": ' + deep_json() + "}")
    else:
        _sparse(report, MAX_DOCUMENT_BYTES + 1)
    before = snapshot(tmp_path)
    extra = ["--runs", "2"] if command == "bench" else ["-o", tmp_path / "b.tar.gz"]
    result = run_cli(command, run_dir, *extra)
    assert_clean_refusal(result, 2, "report.json")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "content, needle",
    [
        (deep_json(), "levels deep"),
        ('{"compressed": ' + deep_json() + "}", "levels deep"),
        ("[1, 2]", "holds a list at the top"),
        ('"text"', "holds text at the top"),
        ('{"compressed": null}', "not a compress report"),
    ],
    ids=["deep", "deep-section", "list", "text", "null-section"],
)
def test_a_malformed_against_report_is_refused(compressed, digits, tmp_path, content, needle):
    stored = tmp_path / "stored.json"
    stored.write_text(content)
    result = run_cli(
        "verify", compressed / "model.onnx", "--baseline", digits["model"], "--against", stored
    )
    assert_clean_refusal(result, 2, needle)


@pytest.mark.parametrize(
    "content, needle",
    [(deep_json(), "levels deep"), ("[1, 2]", "at the top"), ('{"mean": {"a": 1}}', "mean")],
    ids=["deep", "list", "table-value"],
)
def test_a_malformed_preprocess_file_is_refused(run_dir, tmp_path, content, needle):
    prep = tmp_path / "prep.json"
    prep.write_text(content)
    before = snapshot(tmp_path)
    result = run_cli("package", run_dir, "-o", tmp_path / "b.tar.gz", "--preprocess", prep)
    assert_clean_refusal(result, 2, needle)
    assert snapshot(tmp_path) == before


def test_a_deep_recipe_toml_in_a_run_folder_is_refused_by_package(run_dir, tmp_path):
    (run_dir / "recipe.toml").write_text("x = " + "[" * DEEP + "]" * DEEP + "\n")
    before = snapshot(tmp_path)
    result = run_cli("package", run_dir, "-o", tmp_path / "b.tar.gz")
    assert_clean_refusal(result, 2, "recipe.toml")
    assert snapshot(tmp_path) == before


def test_a_deep_resume_state_record_is_refused_not_a_crash(tmp_path):
    from compressor.trust.strict_read import load_json
    from foundation.errors import UsageError

    record = tmp_path / "job.json"
    record.write_text('{"outcome": ' + deep_json() + "}")
    with pytest.raises(UsageError, match="levels deep"):
        load_json(record, "--resume state record of job 'a'")


def test_bench_on_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    with deadline(work_bound_s()):
        result = run_cli("bench", fifo, "--runs", "2")
    assert_clean_refusal(result, 2, "not a regular file")


def test_data_on_a_fifo_is_refused_not_waited_on(digits, tmp_path):
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    with deadline(work_bound_s()):
        result = run_cli("bench", digits["model"], "--runs", "2", "--data", fifo)
    assert_clean_refusal(result, 2, "not a regular file")


def test_a_report_json_list_is_refused_by_package_with_its_name(run_dir, tmp_path):
    (run_dir / "report.json").write_text(json.dumps([{"artifact": "model.onnx"}]))
    result = run_cli("package", run_dir, "-o", tmp_path / "b.tar.gz")
    assert_clean_refusal(result, 2, "report.json")
    assert not (tmp_path / "b.tar.gz").exists()
