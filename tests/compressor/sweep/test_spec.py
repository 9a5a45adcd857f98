"""Sweep files: structure errors are UsageErrors (exit 2), jobs expand into ordinary recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressor.sweep.jobs import expand_jobs
from compressor.sweep.spec import load_sweep
from foundation.errors import UsageError

MODEL = '[[models]]\nname = "m"\nmodel = "m.pt2"\ncalib = "data/c.npz"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_grid_variants_and_jobs_expand_with_layered_settings(tmp_path: Path) -> None:
    text = (
        "[defaults]\nruns = 7\n[defaults.budget]\nmax_size_mb = 5.0\n"
        + MODEL
        + "[models.budget]\nmax_accuracy_drop = 1.0\n"
        '[grid]\ntargets = ["onnx"]\nprecisions = ["fp32", "int8"]\n'
        '[[variants]]\nname = "mm"\n'
        '[[variants]]\nname = "pct"\ncalibration = "percentile"\n[variants.budget]\nmax_size_mb = 2.0\n'
        '[[jobs]]\nmodel = "m"\ntarget = "onnx"\nprecision = "dynamic"\nid = "dyn"\nruns = 3\n'
    )
    jobs, skipped = expand_jobs(load_sweep(write(tmp_path, text)), tmp_path / "out")
    assert [j.id for j in jobs] == [
        "m-onnx-fp32-mm",
        "m-onnx-fp32-pct",
        "m-onnx-int8-mm",
        "m-onnx-int8-pct",
        "dyn",
    ]
    assert skipped == []
    pct = jobs[3].recipe
    assert (pct.precision, pct.calibration, pct.runs) == ("int8", "percentile", 7)
    assert (pct.budget.max_size_mb, pct.budget.max_accuracy_drop) == (2.0, 1.0)
    assert jobs[0].recipe.budget.max_size_mb == 5.0 and jobs[4].recipe.runs == 3
    # paths are relative to the sweep file; outputs are DIR/<job-id>
    assert pct.model == str(tmp_path / "m.pt2") and pct.calib == str(tmp_path / "data/c.npz")
    assert pct.output == str(tmp_path / "out" / "m-onnx-int8-pct")


def test_grid_skips_precisions_a_target_does_not_declare(tmp_path: Path) -> None:
    text = MODEL + '[grid]\ntargets = ["tensorrt"]\nprecisions = ["fp32", "dynamic"]\n'
    jobs, skipped = expand_jobs(load_sweep(write(tmp_path, text)), tmp_path / "out")
    assert [j.id for j in jobs] == ["m-tensorrt-fp32"]
    assert len(skipped) == 1 and "m tensorrt dynamic" in skipped[0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[grid]\ntargets = []\n[extra]\n", "unknown sections ['extra']"),
        ('[[models]]\nname = "m"\n', "needs a 'model' file"),
        ('[[models]]\nname = "a b"\nmodel = "x"\n', "name 'a b'"),
        (MODEL, "has no jobs"),
        (MODEL + '[grid]\ntargets = ["onnx"]\n', "needs both targets and precisions"),
        (MODEL + '[[jobs]]\nmodel = "zz"\ntarget = "onnx"\nprecision = "fp32"\n', "'zz' is not"),
        (MODEL + '[[jobs]]\nmodel = "m"\ntarget = "onnx"\n', "needs ['precision']"),
        ("models = 3\n", "must be an array of tables"),
        ("[grid\n", "is not valid TOML"),
    ],
)
def test_bad_structure_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_sweep(write(tmp_path, text))


@pytest.mark.parametrize(
    "extra, message",
    [
        ("threads = 'two'\n", "job 'm-onnx-fp32': 'threads' is 'two'"),
        ("colour = 1\n", "unknown keys ['colour']"),
        ("output = 'x'\n", "'output' is set by the sweep"),
    ],
)
def test_bad_recipe_keys_name_the_job(tmp_path: Path, extra: str, message: str) -> None:
    text = MODEL + extra + '[grid]\ntargets = ["onnx"]\nprecisions = ["fp32"]\n'
    spec = load_sweep(write(tmp_path, text))
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        expand_jobs(spec, tmp_path / "out")


def test_unknown_target_and_duplicate_jobs_are_refused(tmp_path: Path) -> None:
    bad_target = MODEL + '[grid]\ntargets = ["coreml"]\nprecisions = ["fp32"]\n'
    with pytest.raises(UsageError, match="Unknown target 'coreml'"):
        expand_jobs(load_sweep(write(tmp_path, bad_target)), tmp_path / "out")
    twice = MODEL + '[grid]\ntargets = ["onnx"]\nprecisions = ["fp32"]\n'
    twice += '[[jobs]]\nmodel = "m"\ntarget = "onnx"\nprecision = "fp32"\n'
    with pytest.raises(UsageError, match="same job twice"):
        expand_jobs(load_sweep(write(tmp_path, twice)), tmp_path / "out")


def test_cli_exits_2_for_a_bad_sweep_file(tmp_path: Path, cli) -> None:
    result = cli(["sweep", write(tmp_path, "[grid\n"), "-o", tmp_path])
    assert result.exit_code == 2 and "is not valid TOML" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    missing = cli(["sweep", tmp_path / "none.toml"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_an_unreachable_cluster_is_a_usage_error_in_seconds(tmp_path: Path, cli) -> None:
    pytest.importorskip("ray")
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = MODEL + '[grid]\ntargets = ["onnx"]\nprecisions = ["fp32"]\n'
    args = ["sweep", str(write(tmp_path, text)), "-o", str(tmp_path / "o")]
    result = cli([*args, "--ray-address", f"ray://127.0.0.1:{port}"])
    assert result.exit_code == 2 and "Cannot reach the Ray cluster" in result.output
