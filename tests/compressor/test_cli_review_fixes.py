"""Bad input found by review: each gets a clean exit 2 (or the right behaviour), nothing lost."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from compressor.cli import main


def _run(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_outputs_never_overwrite_the_input_model(example, tmp_path):
    shutil.copy(example["model"], tmp_path / "model.pt2")
    before = (tmp_path / "model.pt2").read_bytes()
    result = _run([tmp_path / "model.pt2", "--runs", "2", "-o", tmp_path])
    assert result.exit_code == 2 and "inside the output folder" in result.output
    assert (tmp_path / "model.pt2").read_bytes() == before


def test_a_folder_of_foreign_files_is_not_an_output_folder(example, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = _run([example["model"], "--runs", "2", "-o", tmp_path])
    assert result.exit_code == 2 and "no earlier compress run" in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_rerun_into_the_same_folder_replaces_the_previous_outputs(example, tmp_path):
    out = tmp_path / "o"
    args = [example["model"], "--no-default-floor", "--runs", "2", "-o", out]  # no data
    assert _run([*args, "-t", "tensorrt"]).exit_code == 0
    assert (out / "build_engine.py").exists()
    assert _run(args).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "recipe.toml", "report.json"]


def test_error_text_with_brackets_is_printed_verbatim(example, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 1, 9, 9), np.float32))
    result = _run([example["model"], "--eval", tmp_path / "d.npz", "-o", tmp_path / "o"])
    assert result.exit_code == 2
    assert "[samples, ...]" in result.output and "[1, 8, 8]" in result.output


def test_two_precisions_and_zero_calibration_samples_are_rejected(example, tmp_path):
    both = _run([example["model"], "--int8", "--fp16", "-o", tmp_path / "o"])
    assert both.exit_code == 2 and "Choose one precision" in both.output
    zero = _run(
        [
            example["model"],
            "--int8",
            "--calib",
            example["calib"],
            "--calib-samples",
            "0",
            "-o",
            tmp_path / "o",
        ]
    )
    assert zero.exit_code == 2 and "--calib-samples" in zero.output
    fid = _run([example["model"], "--min-fidelity", "0.99", "-o", tmp_path / "o"])
    assert fid.exit_code == 2 and "--eval" in fid.output
    assert not (tmp_path / "o").exists()


def test_input_shape_takes_the_batch_first_as_documented(example_module, tmp_path):
    torch.jit.trace(example_module, torch.zeros(2, 1, 8, 8)).save(str(tmp_path / "m.pt"))
    result = _run(
        [
            tmp_path / "m.pt",
            "--input-shape",
            "x:1x1x8x8",
            "--no-default-floor",
            "-o",
            tmp_path / "a",
        ]
    )
    assert result.exit_code == 0, result.output
    result = _run(
        [tmp_path / "m.pt", "--input-shape", "1x1x8x8", "--no-default-floor", "-o", tmp_path / "b"]
    )
    assert result.exit_code == 0, result.output
    bad = _run([tmp_path / "m.pt", "--input-shape", "y:1x1x8x8", "-o", tmp_path / "c"])
    assert bad.exit_code == 2 and "model's inputs are ['x']" in bad.output


class Embedder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(20, 8)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.emb(ids).mean(dim=1))


def test_integer_inputs_keep_their_dtype_and_floats_are_not_truncated(tmp_path):
    model = Embedder().eval()
    ids = torch.randint(0, 20, (2, 5))
    torch.export.save(torch.export.export(model, (ids,)), str(tmp_path / "emb.pt2"))
    torch.jit.trace(model, ids).save(str(tmp_path / "emb.pt"))
    np.savez(tmp_path / "ids.npz", ids=np.random.default_rng(0).integers(0, 20, (16, 5)))
    np.savez(tmp_path / "float_ids.npz", ids=np.full((16, 5), 3.7, np.float32))
    ok = _run(
        [
            tmp_path / "emb.pt",
            "--dynamic",
            "--eval",
            tmp_path / "ids.npz",
            "--runs",
            "2",
            "-o",
            tmp_path / "o",
        ]
    )
    assert ok.exit_code == 0, ok.output
    bad = _run([tmp_path / "emb.pt2", "--eval", tmp_path / "float_ids.npz", "-o", tmp_path / "b"])
    assert bad.exit_code == 2 and "holds floats but the model input is int64" in bad.output


def test_bad_labels_are_data_errors(example, tmp_path):
    with np.load(example["eval"]) as archive:
        x = archive["x"]
    np.savez(tmp_path / "str.npz", x=x, labels=np.array(["cat"] * len(x)))
    np.savez(tmp_path / "big.npz", x=x, labels=np.full(len(x), 99))
    for name, message in (("str", "integer class indices"), ("big", "Labels go up to 99")):
        result = _run(
            [
                example["model"],
                "--eval",
                tmp_path / f"{name}.npz",
                "--runs",
                "2",
                "-o",
                tmp_path / name,
            ]
        )
        assert result.exit_code == 2 and message in result.output, result.output


def test_entry_points_that_fail_are_data_errors(example, tmp_path, monkeypatch):
    (tmp_path / "epmod.py").write_text(
        "import numpy as np\n"
        "def boom():\n    raise RuntimeError('disk on fire')\n"
        "def pairs():\n    return [(np.ones((1, 8, 8)), np.ones((1, 8, 8)))] * 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    boom = _run([example["model"], "--eval", "epmod:boom", "-o", tmp_path / "o"])
    assert boom.exit_code == 2 and "disk on fire" in boom.output
    pairs = _run([example["model"], "--eval", "epmod:pairs", "-o", tmp_path / "o"])
    assert pairs.exit_code == 2 and "2-item tuple" in pairs.output


def test_recipes_are_type_checked_and_paths_are_relative_to_the_recipe(example, tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    shutil.copy(example["model"], folder / "m.pt2")
    (folder / "r.toml").write_text('model = "m.pt2"\nruns = 2\nthreads = "2"\n')
    bad = _run(["--recipe", folder / "r.toml", "-o", tmp_path / "o"])
    assert bad.exit_code == 2 and "'threads' is '2' (str)" in bad.output
    (folder / "r.toml").write_text(
        'model = "m.pt2"\nruns = 2\n[budget]\nmax_size_mb = 5\ndefault_floor = false\n'
    )
    good = _run(["--recipe", folder / "r.toml", "-o", tmp_path / "o"])
    assert good.exit_code == 0, good.output
    folder_as_recipe = _run(["--recipe", folder, "-o", tmp_path / "o2"])
    assert folder_as_recipe.exit_code == 2 and "could not be read" in folder_as_recipe.output


def test_dynamic_on_a_conv_only_model_says_what_to_use_instead(tmp_path):
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU()).eval()
    x = torch.zeros(1, 1, 8, 8)
    torch.export.save(torch.export.export(conv, (x,)), str(tmp_path / "c.pt2"))
    result = _run([tmp_path / "c.pt2", "--dynamic", "-o", tmp_path / "o"])
    assert result.exit_code == 2 and "Use --int8" in result.output
    assert not (tmp_path / "o").exists()


def test_onnx_with_external_weights_is_loaded_whole(example, tmp_path):
    out = tmp_path / "fp32"
    assert (
        _run([example["model"], "--eval", example["eval"], "--runs", "2", "-o", out]).exit_code == 0
    )
    model = onnx.load(str(out / "model.onnx"))
    onnx.save(
        model,
        str(tmp_path / "ext.onnx"),
        save_as_external_data=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    result = _run(
        [
            tmp_path / "ext.onnx",
            "--int8",
            "--calib",
            example["calib"],
            "--runs",
            "2",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 0, result.output
    (tmp_path / "ext.onnx.data").unlink()
    missing = _run([tmp_path / "ext.onnx", "-o", tmp_path / "o2"])
    assert missing.exit_code == 2 and "external data" in missing.output


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_works_with_any_sample_count(example, tmp_path, method):
    result = _run(
        [
            example["model"],
            "--int8",
            "--calib",
            example["calib"],
            "--calib-samples",
            "179",
            "--calibration",
            method,
            "--runs",
            "2",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["passes"]["int8"]["calibration_samples"] == 179


def test_calibration_batches_are_equal_for_histograms():
    from compressor.precision import calibration_batch

    assert calibration_batch("minmax", 179, None) == 16
    assert calibration_batch("entropy", 179, None) == 1
    assert calibration_batch("entropy", 180, None) == 15
    assert calibration_batch("percentile", 64, 4) == 4


def test_the_fp32_reference_runs_in_the_target_runtime(example, tmp_path):
    result = _run(
        [
            example["model"],
            "-t",
            "tflite",
            "--int8",
            "--calib",
            example["calib"],
            "--runs",
            "5",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["fp32_reference"]["runtime"] == report["compressed"]["runtime"]
    assert report["fp32_reference"]["runtime"].startswith("litert")


def test_prune_options_without_a_ratio_are_rejected(example, tmp_path):
    result = _run([example["model"], "--prune-method", "2:4", "-o", tmp_path / "o"])
    assert result.exit_code == 2 and "need --prune RATIO" in result.output


def test_an_accuracy_collapse_is_flagged_even_without_a_budget(example, tmp_path):
    result = _run(
        [
            example["model"],
            "--prune",
            "0.9",
            "--eval",
            example["eval"],
            "--runs",
            "2",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 1, result.output  # the default floor fails it, no budget needed
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    drop = report["baseline"]["accuracy"] - report["compressed"]["accuracy"]
    assert drop > 0.05  # 90% of channels gone and no fine-tuning
    assert any(n.startswith("WARNING: top-1 fell") for n in report["notes"])
    failed = {b["name"]: b["source"] for b in report["budgets"] if not b["passed"]}
    assert failed.get("min_task_agreement") == "default"
