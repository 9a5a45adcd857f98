"""Inputs that are not batch-first (--batch-axis) and constants shared by all samples."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from calibration.layout import DataLayout
from calibration.loaders import load_npz
from foundation.errors import DataError
from targets.base import TensorSpec

RNG = np.random.default_rng(5)


@pytest.fixture
def vad(wild, tmp_path):
    model = wild.vad_model()
    onnx.save(model, tmp_path / "vad.onnx")
    data = {
        "x": RNG.standard_normal((20, 64)).astype(np.float32),
        "state": RNG.standard_normal((2, 20, 16)).astype(np.float32),  # samples on axis 1
        "sr": np.array(16000),  # one sample rate for every sample
    }
    np.savez(tmp_path / "vad.npz", **data)
    return model, tmp_path / "vad.onnx", tmp_path / "vad.npz", data


def test_vad_with_state_batch_axis_and_scalar_rate_compresses(wild, vad, tmp_path):
    model, path, npz, data = vad
    feeds = {"x": data["x"][:3], "state": data["state"][:, :3], "sr": data["sr"]}
    want = wild.ort_outputs(model, feeds)
    for precision in ("fp32", "int8"):
        out = tmp_path / precision
        flags = ["--int8"] if precision == "int8" else []
        args = [path, "--calib", npz, "--batch-axis", "state:1", *flags, "-o", out]
        result = wild.run(*args)
        assert result.exit_code == 0, result.output
        tol = 1e-5 if precision == "fp32" else 0.05
        for arithmetic in wild.arithmetics_of(out):
            got = wild.artifact_outputs(out, "onnx", feeds, arithmetic)
            assert [g.shape for g in got] == [(3, 1), (2, 3, 16)]
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, atol=tol * max(1.0, np.abs(w).max()))
        report = json.loads((out / "report.json").read_text())
        assert report["compressed"]["fidelity"]["cosine"] > 0.99
    recipe = (tmp_path / "int8" / "recipe.toml").read_text()
    assert "[batch_axes]" in recipe and "state = 1" in recipe
    replay = wild.run("--recipe", tmp_path / "int8" / "recipe.toml", "-o", tmp_path / "again")
    assert replay.exit_code == 0, replay.output


def test_without_batch_axis_the_error_names_the_flag(wild, vad, tmp_path):
    _, path, npz, _ = vad
    result = wild.run(path, "--calib", npz, "-o", tmp_path / "o")
    assert result.exit_code == 2 and "--batch-axis NAME:AXIS" in result.output
    result = wild.run(path, "--calib", npz, "--batch-axis", "state:3", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "rank 3" in result.output
    args = ["--calib", npz, "--batch-axis", "state:1", "-t", "tflite", "-o", tmp_path / "o"]
    result = wild.run(path, *args)  # tflite batches on axis 0 only: refused before any work
    assert result.exit_code == 2 and "axis 0 only" in result.output


def test_whole_shaped_constant_is_shared_and_batches_feed_model_layout(tmp_path):
    np.savez(
        tmp_path / "d.npz",
        x=np.arange(10 * 4, dtype=np.float32).reshape(10, 4),
        mask=np.ones((1, 4), np.float32),  # the input's full static shape: one for all
        state=np.zeros((2, 10, 3), np.float32),
    )
    layout = DataLayout({"state": 1}, {"mask": (1, 4)})
    data = load_npz(tmp_path / "d.npz", layout)
    assert len(data) == 10 and set(data.shared) == {"mask"}
    specs = [
        TensorSpec("x", ("B", 4)),
        TensorSpec("mask", (1, 4)),
        TensorSpec("state", (2, "B", 3)),
    ]
    bound = data.bind(specs)
    feeds, _ = next(bound.batches(4))
    assert feeds["x"].shape == (4, 4) and feeds["state"].shape == (2, 4, 3)
    assert feeds["mask"].shape == (1, 4)
    assert bound.repeated(13)["state"].shape == (2, 13, 3)
    with pytest.raises(DataError, match="shared"):
        data.bind([TensorSpec("x", ("B", 4)), TensorSpec("mask", (1, 5)), specs[2]])


def test_verify_and_bench_take_the_batch_axis_of_the_run(wild, vad, tmp_path):
    _, path, npz, _ = vad
    out = tmp_path / "int8"
    args = [path, "--calib", npz, "--eval", npz, "--batch-axis", "state:1", "--int8", "-o", out]
    assert wild.run(*args).exit_code == 0
    verify = ["verify", out / "model.onnx", "--baseline", path, "--eval", npz, "--runs", "3"]
    refused = wild.run(*verify)
    assert refused.exit_code == 2 and "--batch-axis" in refused.output
    report = tmp_path / "verify.json"
    result = wild.run(*verify, "--batch-axis", "state:1", "--json", report)
    assert result.exit_code == 0, result.output
    outputs = json.loads(report.read_text())["compressed"]["outputs"]
    assert len(outputs) == 2 and all(o["fidelity"]["cosine_mean"] > 0.99 for o in outputs)
    bench = ["bench", out / "model.onnx", "--data", npz, "--runs", "3", "--json"]
    result = wild.run(*bench, "--batch-axis", "state:1")
    assert result.exit_code == 0, result.output
    assert '"p50"' in result.output
