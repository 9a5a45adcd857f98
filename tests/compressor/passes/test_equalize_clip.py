"""Clip-aware equalization: ReLU6/Hardtanh pairs equalized only where the clip never acts."""

from __future__ import annotations

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

SPEC = [TensorSpec("input", ("batch", 3, 12, 12))]


def tiny_channel_relu6(act: type[nn.Module] = nn.ReLU6) -> nn.Module:
    """conv → clip → depthwise → clip → pointwise; depthwise channel 0 ×0.01, undone after.

    Channel 1 of the first conv is pushed far past the clip (×50), so the clip acts on it.
    """
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        act(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        act(),
        nn.Conv2d(8, 16, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    with torch.no_grad():
        model[0].weight[1] *= 50.0
        model[0].bias[1] = 3.0
        model[2].weight[0] *= 0.01
        model[2].bias[0] *= 0.01
        model[4].weight[:, 0] *= 100.0
    return model.eval()


def _data(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset({"input": rng.standard_normal((n, 3, 12, 12)).astype(np.float32)})


def _ranges(path, tensors: list[str], data: Dataset) -> dict:
    """Per-channel (min, max) of the named tensors, through a session that exposes them."""
    model = onnx.load(str(path))
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in tensors)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(tensors, dict(data.inputs))
    return {
        t: (v.min(axis=(0, 2, 3)), v.max(axis=(0, 2, 3)))
        for t, v in zip(tensors, values, strict=True)
    }


def test_clip_pairs_are_found_and_left_alone_without_ranges(tmp_path):
    fp32 = export_module(tiny_channel_relu6(), SPEC, tmp_path)
    graph = onnx.load(str(fp32))
    pairs = find_pairs(graph)
    assert [p.between for p in pairs] == ["Clip", "Clip"]
    assert all(p.clip is not None and (p.clip.low, p.clip.high) == (0.0, 6.0) for p in pairs)
    before = [i.SerializeToString() for i in graph.graph.initializer]
    assert equalize_convs(graph)["pairs"] == 0  # no calibrated ranges: the clip pairs stay
    assert [i.SerializeToString() for i in graph.graph.initializer] == before


def test_clip_equalization_is_float_equal_and_spares_the_clipped_channel(tmp_path):
    fp32 = export_module(tiny_channel_relu6(), SPEC, tmp_path)
    graph = onnx.load(str(fp32))
    pairs = find_pairs(graph)
    ranges = _ranges(fp32, [p.clip.tensor for p in pairs], _data(48))
    assert ranges[pairs[0].clip.tensor][1][1] > 6.0  # channel 1 really reaches the clip
    info = equalize_convs(graph, ranges)
    assert info["pairs"] == 2 and info["through_clip"] == 2
    onnx.save(graph, str(tmp_path / "eq.onnx"))
    assert float_error(fp32, tmp_path / "eq.onnx", _data(16, seed=3), 8) < 1e-5
    old = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(fp32)).graph.initializer}
    new = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    first, dw = pairs[0].first.input[1], pairs[1].first.input[1]
    np.testing.assert_array_equal(old[first][1], new[first][1])  # the clip acts: untouched
    spread = {k: np.abs(w[dw]).reshape(8, -1).max(1) for k, w in (("b", old), ("a", new))}
    assert spread["b"].max() / spread["b"].min() > 30 > 5 > spread["a"].max() / spread["a"].min()


def test_clip_equalization_is_kept_because_held_back_sqnr_rises(tmp_path):
    fp32 = export_module(tiny_channel_relu6(nn.Hardtanh), SPEC, tmp_path)  # Clip(-1, 1)
    assert {(p.clip.low, p.clip.high) for p in find_pairs(onnx.load(str(fp32)))} == {(-1.0, 1.0)}
    off = Int8Config(equalize=False, smooth=False, bias_correction=False)
    on = Int8Config(smooth=False, bias_correction=False)
    plain, dst = tmp_path / "plain.onnx", tmp_path / "q.onnx"
    quantize_int8_static(fp32, plain, _data(64), ORT_CPU_SCHEME, "minmax", 8, config=off)
    info = quantize_int8_static(fp32, dst, _data(64), ORT_CPU_SCHEME, "minmax", 8, config=on)
    step = info["steps"]["equalize"]
    assert step["applied"] and step["through_clip"] == 2, step
    assert step["float_max_relative_error"] <= 1e-4
    assert step["held_back_sqnr_db"]["with"] > step["held_back_sqnr_db"]["without"] + 3.0
    fresh = _data(32, seed=1)
    assert output_sqnr(fp32, dst, fresh) > output_sqnr(fp32, plain, fresh) + 3.0
