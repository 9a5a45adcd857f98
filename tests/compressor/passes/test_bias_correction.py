"""Bias correction: each layer's weight-rounding shift, kept only if held-back SQNR rises."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from calibration.dataset import Dataset
from compressor.passes.bias_correction import (
    _biased_layers,
    _weight_shift,
    correct_biases,
    output_sqnr,
)
from compressor.passes.quantize import quantize_int8_static
from targets.base import TensorSpec
from targets.tensorrt.capabilities import TENSORRT_SCHEME
from tests.compressor.passes.int8_models import export_module


def test_gemm_shift_is_the_mean_output_error_of_rounded_weights(tmp_path):
    torch.manual_seed(0)
    fp32 = export_module(torch.nn.Linear(16, 8), [TensorSpec("input", ("batch", 16))], tmp_path)
    rng = np.random.default_rng(0)
    data = Dataset({"input": (rng.standard_normal((64, 16)) + 2.0).astype(np.float32)})
    qdq = tmp_path / "q.onnx"
    quantize_int8_static(fp32, qdq, data, TENSORRT_SCHEME, "minmax", 16)  # float bias
    model, reference = onnx.load(str(qdq)), onnx.load(str(fp32))
    (out, layer), *_ = _biased_layers(model, reference).items()
    shift = _weight_shift(model, reference, layer, data.inputs["input"].mean(0))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq = layer["weight"]
    w_q = inits[dq.input[0]].astype(np.float64) * inits[dq.input[1]].reshape(-1, 1)
    w = next(
        numpy_helper.to_array(i) for i in reference.graph.initializer if i.name == layer["original"]
    )
    x = data.inputs["input"].astype(np.float64)
    expected = (x @ (w_q - w).T).mean(0)
    assert np.allclose(shift, expected, rtol=1e-6, atol=1e-9) and np.abs(expected).max() > 0


def test_correction_is_kept_only_when_held_back_sqnr_rises(cnn_files, tmp_path):
    from calibration.loaders import load_npz
    from compressor.model.export import export_onnx
    from compressor.model.loading import load_model
    from compressor.passes.cleanup import cleanup_onnx
    from targets.onnx.capabilities import ORT_CPU_SCHEME

    model = load_model(cnn_files["model.pt2"])
    fp32 = cleanup_onnx(
        export_onnx(model, model.inputs, tmp_path / "raw.onnx"), tmp_path / "fp32.onnx"
    )
    fp32 = tmp_path / "fp32.onnx"
    calib = load_npz(cnn_files["calib.npz"]).bind(model.inputs).take(128)
    qdq = tmp_path / "q.onnx"
    quantize_int8_static(fp32, qdq, calib, ORT_CPU_SCHEME, "minmax", 16)
    info = correct_biases(fp32, qdq, calib)
    held = Dataset({k: v[96:] for k, v in calib.inputs.items()})
    sqnr = info["output_sqnr_db"]
    assert info["layers"] >= 3 and info["held_back_samples"] == 32
    assert info["applied"] == (sqnr["with"] > sqnr["without"])
    kept = sqnr["with"] if info["applied"] else sqnr["without"]
    assert abs(output_sqnr(fp32, qdq, held) - kept) < 0.01  # the file on disk is the winner
