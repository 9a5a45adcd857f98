"""`compress sweep --resume` reads its own state records back, which anyone may have edited: a
record of the wrong types makes its job run again; a deep or huge one exits 2 naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.hostile.cli_harness import assert_clean_refusal, run_cli

JOB = "digits-onnx-fp32"


@pytest.fixture(scope="module")
def swept(example: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-job sweep: root/sweep.toml and its output folder root/out."""
    root = tmp_path_factory.mktemp("resume")
    sweep = root / "sweep.toml"
    sweep.write_text(
        "[defaults]\nruns = 3\nwarmup = 1\n"
        f'[[models]]\nname = "digits"\nmodel = "{example["model"]}"\n'
        '[grid]\ntargets = ["onnx"]\nprecisions = ["fp32"]\n'
    )
    result = run_cli("sweep", sweep, "-o", root / "out", "--workers", "1")
    assert result.exit_code in (0, 1), result.output
    return root


def _copy(swept: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copy(swept / "sweep.toml", tmp_path / "sweep.toml")
    out = Path(shutil.copytree(swept / "out", tmp_path / "out", symlinks=True))
    return tmp_path / "sweep.toml", out


def _resume(sweep: Path, out: Path):
    return run_cli("sweep", sweep, "-o", out, "--workers", "1", "--resume")


@pytest.mark.parametrize(
    "field, value",
    [("status", ["passed"]), ("ended", "late"), ("cores", [None]), ("attempts", {}), ("log", 5)],
)
def test_a_record_of_the_wrong_types_reruns_its_job(swept, tmp_path, field, value):
    sweep, out = _copy(swept, tmp_path)
    record = out / ".sweep" / "jobs" / f"{JOB}.json"
    data = json.loads(record.read_text())
    data["outcome"][field] = value
    record.write_text(json.dumps(data))
    result = _resume(sweep, out)
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [row["resumed"] for row in summary["rows"]] == [False]


def test_an_untouched_record_is_reused(swept, tmp_path):
    sweep, out = _copy(swept, tmp_path)
    result = _resume(sweep, out)
    assert result.exit_code in (0, 1), result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [row["resumed"] for row in summary["rows"]] == [True]


@pytest.mark.parametrize("content", ["deep", "huge"])
def test_a_deep_or_huge_record_is_refused(swept, tmp_path, content):
    sweep, out = _copy(swept, tmp_path)
    record = out / ".sweep" / "jobs" / f"{JOB}.json"
    if content == "deep":
        record.write_text('{"outcome": ' + "[" * 1000 + "]" * 1000 + "}")
    else:
        with record.open("wb") as handle:
            handle.truncate(300 << 20)  # sparse: no disk space
    result = _resume(sweep, out)
    assert_clean_refusal(result, 2, "state record", JOB)
