"""Saturation-safe weights: no pair can leave int16 afterwards, so the AVX2 kernels compute
the exact result, and the weights stay close to the 8-bit ones."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from targets.arithmetic import AVX2_PAIRS, emulation_model, exact_session
from targets.arithmetic.layers import find_qlayers, pairs_at_risk
from targets.arithmetic.saturation import make_saturation_safe, quantize_rows, reduce_weight_range
from tests.targets.arithmetic.graphs import kernel_cases

CASES = kernel_cases(seed=5)


def _run(model: onnx.ModelProto, feeds: dict, arithmetic=None) -> np.ndarray:
    model = emulation_model(model, arithmetic) if arithmetic else model
    return exact_session(model.SerializeToString()).run(None, feeds)[0]


def _sqnr(reference: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10((reference**2).sum() / ((reference - y) ** 2).sum()))


@pytest.mark.parametrize("name", sorted(CASES))
def test_safe_weights_compute_the_same_on_avx2_and_exact(name):
    model, feeds = CASES[name]
    safe, records = make_saturation_safe(model)
    assert all(not pairs_at_risk(layer).any() for layer in find_qlayers(safe))
    exact = _run(safe, feeds)
    np.testing.assert_allclose(_run(safe, feeds, AVX2_PAIRS), exact, atol=0.5 * 1.001)
    if name in ("conv_depthwise", "conv_transpose"):
        # depthwise kernels sum in int32, ConvTranspose has no int8 kernel: nothing to do
        assert records == []
        return
    assert records and records[0]["pairs_at_risk"] > 0 and records[0]["why"]
    # The fix costs less than the saturation it removes and keeps the layer close to 8-bit
    # (a Conv onnxruntime runs as a float Conv is fixed too, for runtimes that fuse it).
    original = _run(model, feeds)
    if records[0]["fused_by_onnxruntime"]:
        assert _sqnr(original, exact) > _sqnr(original, _run(model, feeds, AVX2_PAIRS))
    assert _sqnr(original, exact) > 20


def test_the_bias_follows_the_weight_scale():
    model, feeds = CASES["conv_c3"]
    safe, records = make_saturation_safe(model)
    assert records[0]["channels_rescaled"] > 0
    inits = {i.name: numpy_helper.to_array(i) for i in safe.graph.initializer}
    x_scale = float(inits["x_s"])
    np.testing.assert_allclose(inits["b_s"], inits["w_s"] * x_scale, rtol=1e-6)
    old = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    np.testing.assert_allclose(
        inits["b_q"] * inits["b_s"], old["b_q"] * old["b_s"], atol=float(inits["b_s"].max())
    )


def test_pairs_over_128_are_pulled_in_to_128_nearest_their_values():
    values = np.array([[100.2, 60.4, -90.0, -70.0, 127.0, -127.0]])
    rows, moved = quantize_rows(values, np.array([[0, 1], [2, 3], [4, 5]]))
    assert rows.tolist() == [[84, 44, -74, -54, 127, -127]]
    assert moved.tolist() == [2]


def test_seven_bit_weights_stay_within_64():
    model, _ = CASES["conv_c32"]
    for layer in find_qlayers(reduce_weight_range(model)):
        assert np.abs(layer.weight).max() <= 64
        assert not pairs_at_risk(layer).any()
