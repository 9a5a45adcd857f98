"""Dynamic height/width: --input-shape fixes ONNX dims; targets that need fixed dims say which."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from PIL import Image

from compressor.model.dims import fix_dims
from foundation.errors import UsageError
from targets.base import TensorSpec

RNG = np.random.default_rng(3)


@pytest.fixture
def dynamic_model(wild, tmp_path):
    model = wild.opset11_segmenter(height="H", width="W")
    onnx.save(model, tmp_path / "seg.onnx")
    np.savez(tmp_path / "calib.npz", x=RNG.random((8, 3, 16, 16), dtype=np.float32))
    return model, tmp_path / "seg.onnx", tmp_path / "calib.npz"


def test_input_shape_fixes_dynamic_hw_for_tflite(wild, dynamic_model, tmp_path):
    model, path, calib = dynamic_model
    feeds = {"x": RNG.random((1, 3, 24, 20), dtype=np.float32)}
    want = wild.ort_outputs(model, feeds)[0]
    for precision, flags in (("fp32", []), ("int8", ["--int8", "--calib", tmp_path / "c.npz"])):
        np.savez(tmp_path / "c.npz", x=RNG.random((8, 3, 24, 20), dtype=np.float32))
        out = tmp_path / precision
        result = wild.run(path, "-t", "tflite", "--input-shape", "x:1x3x24x20", *flags, "-o", out)
        assert result.exit_code == 0, result.output
        got = wild.artifact_outputs(out, "tflite", feeds)[0]
        assert got.shape == (1, 48, 40)
        tol = 1e-4 if precision == "fp32" else 0.05 * np.abs(want).max()
        np.testing.assert_allclose(got, want, atol=tol)
        report = json.loads((out / "report.json").read_text())
        assert report["passes"]["normalize"]["dims_fixed"] == {"x": [1, 3, 24, 20]}


def test_dynamic_hw_is_refused_up_front_with_the_flag_to_pass(wild, dynamic_model, tmp_path):
    _, path, calib = dynamic_model
    result = wild.run(path, "-t", "tflite", "--int8", "--calib", calib, "-o", tmp_path / "o")
    assert result.exit_code == 2
    assert "--input-shape x:1x3x16x16" in result.output  # sizes taken from the data
    assert "calibrate" not in result.output  # refused before any work
    result = wild.run(path, "-t", "tflite", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "--input-shape x:1x3xHxW" in result.output


def test_onnx_runtime_keeps_dynamic_hw(wild, dynamic_model, tmp_path):
    model, path, calib = dynamic_model
    out = tmp_path / "int8"
    result = wild.run(path, "--int8", "--calib", calib, "-o", out)
    assert result.exit_code == 0, result.output
    dims = onnx.load(out / "model.onnx").graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[2:]] == ["H", "W"]
    feeds = {"x": RNG.random((1, 3, 8, 12), dtype=np.float32)}  # another size than calibrated
    want = wild.ort_outputs(model, feeds)[0]
    for arithmetic in wild.arithmetics_of(out):
        got = wild.artifact_outputs(out, "onnx", feeds, arithmetic)[0]
        assert got.shape == want.shape == (1, 16, 24)
        np.testing.assert_allclose(got, want, atol=0.05 * np.abs(want).max(), err_msg=arithmetic)


def test_fix_dims_checks_rank_and_fixed_dims():
    spec = TensorSpec("x", ("batch", 3, "H", "W"))
    assert fix_dims(spec, (1, 3, 32, 48)).shape == ("batch", 3, 32, 48)
    assert fix_dims(TensorSpec("s", (2, "B", 128)), (2, 4, 128), 1).shape == (2, "B", 128)
    with pytest.raises(UsageError, match="rank 4"):
        fix_dims(spec, (1, 3, 32))
    with pytest.raises(UsageError, match="fixes it to 3"):
        fix_dims(spec, (1, 1, 32, 32))


SIZES_ENTRY = """
import numpy as np


def samples():
    rng = np.random.default_rng(0)
    for h, w in [(16, 16), (12, 20), (16, 16), (8, 24), (12, 20)]:
        yield {"x": rng.random((3, h, w), dtype=np.float32)}
"""


def test_calibration_samples_of_several_sizes_for_onnx_runtime(
    wild, dynamic_model, tmp_path, monkeypatch
):
    """Dynamic H/W stays dynamic for onnxruntime; samples of several sizes calibrate it."""
    model, path, _ = dynamic_model
    (tmp_path / "wild_sizes.py").write_text(SIZES_ENTRY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "eval.npz", x=RNG.random((4, 3, 16, 16), dtype=np.float32))
    args = ["--int8", "--calib", "wild_sizes:samples", "--eval", tmp_path / "eval.npz"]
    result = wild.run(path, *args, "-o", tmp_path / "entry")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "entry" / "report.json").read_text())
    assert report["passes"]["int8"]["calibration_samples"] == 5

    images = tmp_path / "imgs"  # images of several aspect ratios, resized by their shorter side
    images.mkdir()
    for i, (w, h) in enumerate([(32, 32), (48, 32), (32, 40), (64, 32)]):
        pixels = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{i}.png")
    args = [
        "--int8",
        "--calib",
        images,
        "--preprocess",
        "resize=16",
        "--eval",
        tmp_path / "eval.npz",
    ]
    result = wild.run(path, *args, "-o", tmp_path / "folder")
    assert result.exit_code == 0, result.output
    for h, w in [(16, 16), (16, 32)]:  # sizes seen in calibration, and within range
        feeds = {"x": RNG.random((1, 3, h, w), dtype=np.float32)}
        want = wild.ort_outputs(model, feeds)[0]
        for arithmetic in wild.arithmetics_of(tmp_path / "folder"):
            got = wild.artifact_outputs(tmp_path / "folder", "onnx", feeds, arithmetic)[0]
            assert got.shape == want.shape == (1, 2 * h, 2 * w)
            cosine = np.dot(got.ravel(), want.ravel()) / np.linalg.norm(got) / np.linalg.norm(want)
            assert cosine > 0.99, arithmetic  # calibrating on 16x16 images only (SQNR ~20 dB)

    refused = wild.run(path, "--int8", "--calib", "wild_sizes:samples", "-o", tmp_path / "o")
    assert refused.exit_code == 2 and "--eval data of one size" in refused.output
    args = ["--calibration", "entropy", "--eval", tmp_path / "eval.npz", "-o", tmp_path / "o"]
    refused = wild.run(path, "--int8", "--calib", "wild_sizes:samples", *args)
    assert refused.exit_code == 2 and "--calibration minmax" in refused.output


def test_bench_times_a_dynamic_hw_model_at_the_given_shape(wild, dynamic_model):
    """Without --input-shape the noise inputs would be 1x1 images; a conflicting size of a
    fixed dim is refused instead of being ignored."""
    _, path, _ = dynamic_model
    from compressor.bench import shaped_specs
    from compressor.model.artifacts import open_artifact

    runner = open_artifact(path)
    try:
        (spec,) = shaped_specs(runner, {"input": [1, 3, 24, 20]})
        assert spec.shape[1:] == (3, 24, 20)
    finally:
        runner.close()
    result = wild.run("bench", path, "--input-shape", "input:1x3x24x20", "--runs", "2", "--json")
    assert result.exit_code == 0, result.output
    refused = wild.run("bench", path, "--input-shape", "input:1x4x24x20", "--runs", "2")
    assert refused.exit_code == 2 and "fixes it to 3" in refused.output
