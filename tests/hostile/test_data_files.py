"""Hostile data and model shapes: sizes are checked from headers, never by allocating."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot


def _forged_npz(path, declared_samples: int):
    """An .npz whose header claims `declared_samples` rows but holds 10 (a 3 KB file)."""
    arr = np.zeros((10, 1, 8, 8), np.float32)
    header = np.lib.format.header_data_from_array_1_0(arr)
    header["shape"] = (declared_samples, 1, 8, 8)
    body = io.BytesIO()
    np.lib.format.write_array_header_1_0(body, header)
    body.write(arr.tobytes())
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("input.npy", body.getvalue())
    return path


def _absurd_onnx(path):
    dims = [100000, 3, 100000, 100000]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_an_npz_header_declaring_5e8_samples_is_refused_without_allocating(digits, tmp_path):
    bomb = _forged_npz(tmp_path / "bomb.npz", 500_000_000)
    result = run_cli(digits["model"], "--int8", "--calib", bomb, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "declares shape [500000000, 1, 8, 8]", "truncated or forged")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "arrays, needle",
    [
        ({"input": np.float32(3.0)}, "every array is a constant (0-d"),  # 0-d: shared inputs
        ({"input": np.array([{"a": 1}], dtype=object)}, "Python objects"),
    ],
    ids=["0-d", "object"],
)
def test_npz_arrays_that_are_not_sample_tables_are_refused(digits, tmp_path, arrays, needle):
    data = tmp_path / "data.npz"
    np.savez(data, **arrays)
    result = run_cli(digits["model"], "--eval", data, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, needle)
    assert "allow_pickle" not in result.output


@pytest.mark.parametrize("command", ["compress", "bench"])
def test_an_onnx_declaring_absurd_dims_is_refused(tmp_path, command):
    model = _absurd_onnx(tmp_path / "absurd.onnx")
    args = [model, "-o", tmp_path / "out"] if command == "compress" else ["bench", model]
    result = run_cli(*args, "--runs", "2")
    assert_clean_refusal(result, 2, "GiB", "--input-shape")


def test_bench_with_an_absurd_batch_is_refused(digits):
    result = run_cli("bench", digits["model"], "--batch", "100000000", "--runs", "1")
    assert_clean_refusal(result, 2, "GiB", "--batch")


def test_a_decompression_bomb_image_is_refused(digits, tmp_path):
    folder = tmp_path / "images" / "a"
    folder.mkdir(parents=True)
    Image.new("L", (20000, 20000)).save(folder / "bomb.png")  # 400 Mpixel in a few KB
    result = run_cli(digits["model"], "--eval", tmp_path / "images", "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "bomb.png", "decompression bomb")


def test_a_torchscript_model_returning_a_scalar_is_refused(digits, tmp_path):
    class Total(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum()

    model = tmp_path / "scalar.pt"
    torch.jit.save(torch.jit.trace(Total(), torch.ones(1, 1, 8, 8)), str(model))
    result = run_cli(model, "--eval", digits["eval"], "--runs", "2", "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "0-d")


@pytest.mark.parametrize("where", ["model", "eval", "output"])
def test_symlink_loops_and_overlong_names_are_usage_errors(digits, tmp_path, where):
    loop = tmp_path / f"loop-{where}"
    os.symlink(loop, loop)
    long = tmp_path / ("x" * 300)
    for bad in (loop, long):
        args = {"model": [bad], "eval": [digits["model"], "--eval", bad]}.get(
            where, [digits["model"], "-o", bad]
        )
        before = snapshot(tmp_path)
        result = run_cli(*args, "--runs", "2")
        assert_clean_refusal(result, 2)
        assert snapshot(tmp_path) == before
