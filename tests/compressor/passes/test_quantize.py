"""Quantization passes on a real trained CNN: scheme placement and accuracy in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from calibration.loaders import load_npz
from compressor.judging.evaluate import evaluate
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import convert_fp16, quantize_int8_dynamic, quantize_int8_static
from compressor.recipe import Int8Config
from foundation.errors import DataError, UsageError
from targets.base import QuantScheme
from targets.onnx.capabilities import ORT_CPU_SCHEME
from targets.onnx.runner import OnnxRuntimeRunner


@pytest.fixture(scope="module")
def fp32(example, tmp_path_factory):
    model = load_model(example["model"])
    tmp = tmp_path_factory.mktemp("q")
    raw = export_onnx(model, model.inputs, tmp / "raw.onnx")
    cleanup_onnx(raw, tmp / "fp32.onnx")
    return tmp / "fp32.onnx", model.inputs


def _accuracy(path, data):
    return evaluate(OnnxRuntimeRunner(path), data).accuracy


def _zero_points(model):
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_static_int8_keeps_accuracy_and_follows_the_ort_scheme(fp32, example, tmp_path, method):
    path, specs = fp32
    calib = load_npz(example["calib"]).bind(specs)
    evaluation = load_npz(example["eval"]).bind(specs)
    dst = tmp_path / "int8.onnx"
    info = quantize_int8_static(path, dst, calib.take(64), ORT_CPU_SCHEME, method, 16)
    assert info["quantize_nodes"] > 0
    model = onnx.load(str(dst))
    assert all(zp.dtype == np.uint8 for zp in _zero_points(model))  # U8S8 activations
    weights_dq = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and any(
            i.name == n.input[0] and i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4
            for i in model.graph.initializer
        )
    ]
    assert weights_dq and all(  # per-channel conv weights carry one scale per output channel
        len(next(i for i in model.graph.initializer if i.name == n.input[1]).dims) == 1
        for n in weights_dq
    )
    drop = _accuracy(path, evaluation) - _accuracy(dst, evaluation)
    assert drop <= 0.01
    assert dst.stat().st_size <= 0.4 * path.stat().st_size


def test_symmetric_int8_scheme_gives_zero_points_of_zero(fp32, example, tmp_path):
    path, specs = fp32
    scheme = QuantScheme(activation_type="int8", activation_symmetric=True, quantize_bias=False)
    quantize_int8_static(
        path, tmp_path / "s.onnx", load_npz(example["calib"]).bind(specs).take(32), scheme
    )
    zps = _zero_points(onnx.load(str(tmp_path / "s.onnx")))
    assert zps and all(zp.dtype == np.int8 and not zp.any() for zp in zps)


def test_calibration_rejects_nan_and_unknown_methods(fp32, example, tmp_path):
    path, specs = fp32
    calib = load_npz(example["calib"]).bind(specs).take(8)
    bad = calib.inputs["x"].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        quantize_int8_static(path, tmp_path / "n.onnx", type(calib)({"x": bad}), ORT_CPU_SCHEME)
    with pytest.raises(UsageError, match="minmax"):
        quantize_int8_static(path, tmp_path / "n.onnx", calib, ORT_CPU_SCHEME, "kmeans")


def test_fp16_and_dynamic_run_close_to_fp32(fp32, example, tmp_path):
    path, specs = fp32
    evaluation = load_npz(example["eval"]).bind(specs)
    convert_fp16(path, tmp_path / "h.onnx")
    types = {i.data_type for i in onnx.load(str(tmp_path / "h.onnx")).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    info = quantize_int8_dynamic(path, tmp_path / "d.onnx")
    assert info["dynamic_ops"] > 0
    base = _accuracy(path, evaluation)
    assert abs(_accuracy(tmp_path / "h.onnx", evaluation) - base) <= 0.01
    assert abs(_accuracy(tmp_path / "d.onnx", evaluation) - base) <= 0.01


RANGES = Int8Config(equalize=False, smooth=False)


def test_entropy_calibration_chooses_other_scales_than_minmax(fp32, example, tmp_path):
    """Regression: onnxruntime's entropy calibrator, driven by quantize_static, equals minmax."""
    path, specs = fp32
    calib = load_npz(example["calib"]).bind(specs).take(64)
    scales = {}
    for method in ("minmax", "entropy"):
        quantize_int8_static(  # no graph step, whose kept/not decisions would move scales too
            path, tmp_path / f"{method}.onnx", calib, ORT_CPU_SCHEME, method, 16, config=RANGES
        )
        model = onnx.load(str(tmp_path / f"{method}.onnx"))
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        scales[method] = {
            n.input[0]: float(inits[n.input[1]])
            for n in model.graph.node
            if n.op_type == "QuantizeLinear"
        }
    assert scales["minmax"].keys() == scales["entropy"].keys()
    assert any(scales["entropy"][k] < 0.99 * scales["minmax"][k] for k in scales["minmax"])
    assert all(scales["entropy"][k] <= scales["minmax"][k] * 1.0001 for k in scales["minmax"])


def test_dynamic_on_a_conv_only_model_says_what_to_use_instead(tmp_path, cli):
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU()).eval()
    x = torch.zeros(1, 1, 8, 8)
    torch.export.save(torch.export.export(conv, (x,)), str(tmp_path / "c.pt2"))
    result = cli([tmp_path / "c.pt2", "--dynamic", "-o", tmp_path / "o"])
    assert result.exit_code == 2 and "Use --int8" in result.output
    assert not (tmp_path / "o").exists()
