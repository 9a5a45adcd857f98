"""The quantize pass with saturation-safe weights (QuantScheme.saturation_safe_weights): only
layers at risk change, the AVX2 kernels then compute the exact result, and fidelity stays
within a fraction of a dB of full 8-bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from calibration.loaders import load_npz
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from compressor.recipe import Int8Config
from targets.arithmetic import AVX2_PAIRS, emulation_model, exact_session
from targets.arithmetic.layers import find_qlayers, pairs_at_risk
from targets.onnx.capabilities import ORT_CPU_SCHEME

PLAIN = Int8Config(equalize=False, smooth=False, bias_correction=False)


@pytest.fixture(scope="module")
def quantized(example, tmp_path_factory):
    model = load_model(example["model"])
    tmp = tmp_path_factory.mktemp("safe")
    fp32 = tmp / "fp32.onnx"
    cleanup_onnx(export_onnx(model, model.inputs, tmp / "raw.onnx"), fp32)
    calib = load_npz(example["calib"]).bind(model.inputs).take(128)
    safe_scheme = dataclasses.replace(ORT_CPU_SCHEME, saturation_safe_weights=True)
    full_scheme = dataclasses.replace(ORT_CPU_SCHEME, saturation_safe_weights=False)
    full = quantize_int8_static(fp32, tmp / "q8.onnx", calib, full_scheme, config=PLAIN)
    safe = quantize_int8_static(fp32, tmp / "safe.onnx", calib, safe_scheme, config=PLAIN)
    x = load_npz(example["eval"]).bind(model.inputs).inputs
    return tmp, full, safe, x


def _outputs(model: onnx.ModelProto | str, x: dict, arithmetic=None) -> np.ndarray:
    model = onnx.load(model) if isinstance(model, str) else model
    model = emulation_model(model, arithmetic) if arithmetic else model
    return exact_session(model.SerializeToString()).run(None, x)[0]


def _sqnr(reference: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10((reference**2).sum() / ((reference - y) ** 2).sum()))


def test_the_record_names_each_layer_at_risk_and_what_was_done(quantized):
    _, full, safe, _ = quantized
    assert "saturation_safe_weights" not in full
    record = safe["saturation_safe_weights"]
    assert record["applied"] and record["why"]
    for layer in record["layers"]:
        assert layer["pairs_at_risk"] > 0 and layer["channels_at_risk"] <= layer["channels"]
        assert layer["max_scale_factor"] >= 1.0 and "VPMADDUBSW" in layer["why"]


def test_no_pair_can_saturate_and_both_arithmetics_agree(quantized):
    tmp, _, _, x = quantized
    model = onnx.load(str(tmp / "safe.onnx"))
    assert not any(pairs_at_risk(layer).any() for layer in find_qlayers(model))
    np.testing.assert_allclose(_outputs(model, x, AVX2_PAIRS), _outputs(model, x), atol=1e-5)


def test_safe_weights_cost_little_against_full_8bit(quantized):
    tmp, _, _, x = quantized
    fp32 = _outputs(str(tmp / "fp32.onnx"), x)
    full = _outputs(str(tmp / "q8.onnx"), x)
    safe = _outputs(str(tmp / "safe.onnx"), x)
    # Full 8-bit breaks on AVX2 kernels; the safe weights lose little in exact arithmetic.
    assert _sqnr(fp32, _outputs(str(tmp / "q8.onnx"), x, AVX2_PAIRS)) < _sqnr(fp32, full) - 6
    assert _sqnr(fp32, safe) > _sqnr(fp32, full) - 0.5
