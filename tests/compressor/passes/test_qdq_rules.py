"""Placement rules on models that break naive int8: masks, mixed-range Concats, MobileNet speed.

Each test also runs plain onnxruntime `quantize_static` on the same graph and data, to show
the case is real: the rules, not the model, make the difference.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from benchmarks.zoo import build_model
from calibration.dataset import Dataset
from calibration.reader import DatasetReader
from compressor.passes.quantize import quantize_int8_static
from targets.base import TensorSpec
from targets.onnx.capabilities import ORT_CPU_SCHEME
from targets.tensorrt.capabilities import TENSORRT_SCHEME
from tests.compressor.passes.int8_models import (
    BoxesAndScores,
    MaskedEncoder,
    cosine_per_sample,
    encoder_data,
    export_module,
    sqnr_db,
)
from tests.int8_arithmetics import EVERY_ARITHMETIC, EXACT_ONLY, run_in

SCHEMES = {"onnx": ORT_CPU_SCHEME, "tensorrt": TENSORRT_SCHEME}
# The arithmetics each target's int8 may be computed in: onnxruntime's CPU kernels sum u8×s8
# pairs in int16 without VNNI (the portable scheme must hold there too); TensorRT in int32.
ARITHMETICS_OF = {"onnx": EVERY_ARITHMETIC, "tensorrt": EXACT_ONLY}


def _run(path, data: Dataset, arithmetic: str = EXACT_ONLY[0]) -> np.ndarray:
    return run_in(path, data.inputs, arithmetic)[0]


def _plain_ort(fp32, dst, calib: Dataset):
    quantize_static(
        str(fp32),
        str(dst),
        DatasetReader(calib, 16),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return dst


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    torch.manual_seed(0)
    specs = [TensorSpec("tokens", ("batch", 12, 32)), TensorSpec("mask", ("batch", 12))]
    return export_module(MaskedEncoder(), specs, tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def heads(tmp_path_factory, digits):
    torch.manual_seed(0)
    specs = [TensorSpec("image", ("batch", 1, 8, 8))]
    return export_module(BoxesAndScores(), specs, tmp_path_factory.mktemp("heads"))


def test_plain_ort_int8_collapses_the_masked_encoder(encoder, tmp_path):
    calib, evaluation = encoder_data(64, seed=0), encoder_data(64, seed=1)
    plain = _plain_ort(encoder, tmp_path / "plain.onnx", calib)
    for arithmetic in EVERY_ARITHMETIC:
        cosine = cosine_per_sample(_run(encoder, evaluation), _run(plain, evaluation, arithmetic))
        assert cosine.min() < 0.95, arithmetic


@pytest.mark.parametrize("target", ["onnx", "tensorrt"])
def test_masked_encoder_keeps_cosine_in_default_int8(encoder, tmp_path, target):
    calib, evaluation = encoder_data(64, seed=0), encoder_data(64, seed=1)
    dst = tmp_path / "int8.onnx"
    info = quantize_int8_static(encoder, dst, calib, SCHEMES[target], "minmax", 16)
    for arithmetic in ARITHMETICS_OF[target]:
        cosine = cosine_per_sample(_run(encoder, evaluation), _run(dst, evaluation, arithmetic))
        assert cosine.min() >= 0.99, arithmetic
    masks = [k for k in info["kept_float"] if k["rule"] == "mask-constant"]
    assert masks and all("mask/sentinel" in k["why"] for k in masks)
    model = onnx.load(str(dst))
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) >= 4  # still int8
    if target == "onnx":  # LayerNorm/GELU run float on ORT CPU, reported as islands
        islands = {k["node"] for k in info["kept_float"] if k["rule"] == "float-island"}
        assert any("layer_norm" in name for name in islands)


def _score_sqnr(reference: np.ndarray, test: np.ndarray) -> list[float]:
    return [sqnr_db(reference[..., c], test[..., c]) for c in range(4, 7)]


@pytest.mark.parametrize("target", ["onnx", "tensorrt"])
def test_concatenated_sigmoid_scores_survive_default_int8(heads, digits, tmp_path, target):
    calib = Dataset({"image": digits["calib"].inputs["input"][:64]})
    evaluation = Dataset({"image": digits["eval"].inputs["input"][:128]})
    reference = _run(heads, evaluation)
    dst = tmp_path / "int8.onnx"
    info = quantize_int8_static(heads, dst, calib, SCHEMES[target], "minmax", 16)
    for arithmetic in ARITHMETICS_OF[target]:
        out = _run(dst, evaluation, arithmetic)
        assert min(_score_sqnr(reference, out)) >= 20.0, arithmetic
        assert sqnr_db(reference[..., :4], out[..., :4]) >= 20.0, arithmetic  # boxes stay int8
    if target == "onnx":  # the sigmoid scores break in the ranges, in every arithmetic
        plain = _plain_ort(heads, tmp_path / "plain.onnx", calib)
        for arithmetic in EVERY_ARITHMETIC:
            assert min(_score_sqnr(reference, _run(plain, evaluation, arithmetic))) < 20.0
        kept = {k["tensor"]: k["why"] for k in info["kept_float"] if "tensor" in k}
        assert any("Sigmoid output" in why for why in kept.values())


def test_every_int8_conv_of_a_mobilenet_runs_as_an_int8_kernel(digits, tmp_path):
    torch.manual_seed(0)
    fp32 = export_module(build_model("mobilenet"), [TensorSpec("x", ("batch", 1, 8, 8))], tmp_path)
    calib = Dataset({"x": digits["calib"].inputs["input"][:64]})
    info = quantize_int8_static(fp32, tmp_path / "q.onnx", calib, ORT_CPU_SCHEME, "minmax", 16)
    assert info["kept_float"] == []  # no rule fires on a plain CNN
    convs = sum(n.op_type == "Conv" for n in onnx.load(str(tmp_path / "q.onnx")).graph.node)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tmp_path / "q.onnx"), options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(
        n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node
    )
    assert convs >= 10 and ops["QLinearConv"] == convs and ops["Conv"] == 0
