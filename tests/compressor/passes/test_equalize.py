"""Cross-layer equalization: a badly scaled depthwise pair, equal in float, better in int8."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from calibration.dataset import Dataset
from compressor.passes.equalize import equalize_convs, find_pairs
from compressor.passes.held_back import float_error, output_sqnr
from compressor.passes.quantize import quantize_int8_static
from compressor.recipe import Int8Config
from targets.base import TensorSpec
from targets.onnx.capabilities import ORT_CPU_SCHEME
from tests.compressor.passes.int8_models import export_module
from tests.int8_arithmetics import EVERY_ARITHMETIC


def badly_scaled_dw() -> nn.Module:
    """conv → ReLU → depthwise → ReLU → pointwise, depthwise channel 0 ×100, undone after."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    with torch.no_grad():
        model[2].weight[0] *= 100.0
        model[2].bias[0] *= 100.0
        model[4].weight[:, 0] /= 100.0
    return model.eval()


def _data(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset({"input": rng.standard_normal((n, 3, 12, 12)).astype(np.float32)})


def _weights(path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def test_equalized_graph_is_float_equal_with_balanced_ranges(tmp_path):
    fp32 = export_module(badly_scaled_dw(), [TensorSpec("input", ("batch", 3, 12, 12))], tmp_path)
    model = onnx.load(str(fp32))
    pairs = find_pairs(model)
    info = equalize_convs(model)
    onnx.save(model, str(tmp_path / "eq.onnx"))
    assert info["pairs"] == 2 and info["through"] == ["Relu"] and len(pairs) == 2
    assert float_error(fp32, tmp_path / "eq.onnx", _data(16), 8) < 1e-5
    before, after = _weights(fp32), _weights(tmp_path / "eq.onnx")
    dw = pairs[1].first.input[1]  # the depthwise conv's weight
    spread = {k: np.abs(w[dw]).reshape(8, -1).max(1) for k, w in (("b", before), ("a", after))}
    assert spread["b"].max() / spread["b"].min() > 50 > 5 > spread["a"].max() / spread["a"].min()


def test_equalization_is_kept_because_held_back_int8_sqnr_rises(tmp_path):
    fp32 = export_module(badly_scaled_dw(), [TensorSpec("input", ("batch", 3, 12, 12))], tmp_path)
    dst = tmp_path / "q.onnx"
    off = Int8Config(equalize=False, smooth=False, bias_correction=False)
    on = Int8Config(smooth=False, bias_correction=False)
    quantize_int8_static(
        fp32, tmp_path / "plain.onnx", _data(64), ORT_CPU_SCHEME, "minmax", 8, config=off
    )
    info = quantize_int8_static(fp32, dst, _data(64), ORT_CPU_SCHEME, "minmax", 8, config=on)
    step = info["steps"]["equalize"]
    assert step["applied"] and step["pairs"] == 2
    assert step["held_back_sqnr_db"]["with"] > step["held_back_sqnr_db"]["without"] + 6.0
    fresh = _data(32, seed=1)  # samples neither calibration nor the held-back part saw
    for arithmetic in EVERY_ARITHMETIC:  # the gain holds on CPUs with and without VNNI
        plain = output_sqnr(fp32, tmp_path / "plain.onnx", fresh, arithmetic=arithmetic)
        assert output_sqnr(fp32, dst, fresh, arithmetic=arithmetic) > plain + 6.0, arithmetic
    options = ort.SessionOptions()  # equalization only rescales weights: every conv stays int8
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(dst), options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    assert ops["QLinearConv"] == 3 and ops["Conv"] == 0


def test_pairs_are_found_through_pooling_and_equalized_exactly(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 4, 3), nn.Hardswish()
    )
    with torch.no_grad():
        model[0].weight[2] *= 30.0
    fp32 = export_module(model, [TensorSpec("input", ("batch", 3, 12, 12))], tmp_path)
    graph = onnx.load(str(fp32))
    assert [p.between for p in find_pairs(graph)] == ["Relu+MaxPool"]
    assert equalize_convs(graph)["pairs"] == 1
    onnx.save(graph, str(tmp_path / "eq.onnx"))
    assert float_error(fp32, tmp_path / "eq.onnx", _data(8), 8) < 1e-5
    first = _weights(tmp_path / "eq.onnx")[find_pairs(graph)[0].first.input[1]]
    ranges = np.abs(first).reshape(6, -1).max(1)
    assert ranges.max() / ranges.min() < 10  # channel 2's x30 moved into the second conv
