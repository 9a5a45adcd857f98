"""Learned rounding: lower layer reconstruction error than nearest, higher held-back SQNR."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from calibration.dataset import Dataset
from compressor.passes.adaround import _capture, _full_loss, _problem, find_layers, optimise
from compressor.passes.held_back import output_sqnr
from compressor.passes.quantize import quantize_int8_static
from compressor.recipe import Int8Config
from targets.base import TensorSpec
from targets.onnx.capabilities import ORT_CPU_SCHEME
from tests.compressor.passes.int8_models import export_module

SPEC = [TensorSpec("input", ("batch", 3, 12, 12))]
PLAIN = Int8Config(equalize=False, smooth=False, bias_correction=False)


def hard_layer_cnn() -> nn.Module:
    """A CNN whose middle conv has one outlier weight per output channel (coarse steps)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    with torch.no_grad():
        model[2].weight[:, :, 1, 1] *= 0.0
        model[2].weight[:, 0, 1, 1] = 30.0 * model[2].weight.abs().amax(dim=(1, 2, 3))
    return model.eval()


def _data(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset({"input": rng.standard_normal((n, 3, 12, 12)).astype(np.float32)})


def test_learned_rounding_lowers_each_layers_reconstruction_error(tmp_path):
    fp32 = export_module(hard_layer_cnn(), SPEC, tmp_path)
    qdq = tmp_path / "q.onnx"
    quantize_int8_static(fp32, qdq, _data(32), ORT_CPU_SCHEME, "minmax", 8, config=PLAIN)
    model, reference = onnx.load(str(qdq)), onnx.load(str(fp32))
    layers = find_layers(model, reference)
    assert [layer.node.op_type for layer in layers] == ["Conv", "Conv", "Gemm"]
    inputs = _capture(qdq, _data(32), 8, {layer.node.input[0]: 0 for layer in layers})
    caps = {la.target: len(inputs[la.node.input[0]]) for la in layers}
    cached = inputs | _capture(fp32, _data(32), 8, caps)
    problem = _problem(model, reference, layers[1], cached)
    learned, steps = optimise(problem, seconds=20.0)
    assert steps >= 50
    changed = (learned != problem.nearest).float().mean()
    assert 0 < changed < 0.5  # some weights rounded the other way, most kept
    assert (learned - torch.floor(problem.weight)).abs().max() <= 1  # floor or ceil only
    assert _full_loss(problem, learned) < 0.8 * _full_loss(problem, problem.nearest)  # unseen rows


def test_learned_rounding_is_kept_because_held_back_sqnr_rises(tmp_path):
    fp32 = export_module(hard_layer_cnn(), SPEC, tmp_path)
    plain, dst = tmp_path / "plain.onnx", tmp_path / "q.onnx"
    learned = Int8Config(
        equalize=False, smooth=False, bias_correction=False, learned_rounding=True, rounding_time=30
    )
    quantize_int8_static(fp32, plain, _data(64), ORT_CPU_SCHEME, "minmax", 8, config=PLAIN)
    info = quantize_int8_static(fp32, dst, _data(64), ORT_CPU_SCHEME, "minmax", 8, config=learned)
    step = info["steps"]["learned_rounding"]
    assert step["applied"] and step["layers"] >= 1, step
    assert step["held_back_sqnr_db"]["with"] > step["held_back_sqnr_db"]["without"] + 1.0
    assert step["seconds"] < 30 + 20  # the budget, plus capture and the held-back check
    layer = step["per_layer"][1]
    assert layer["loss"]["learned"] < layer["loss"]["nearest"]
    fresh = _data(32, seed=1)
    assert output_sqnr(fp32, dst, fresh) > output_sqnr(fp32, plain, fresh) + 1.0
    scales = {  # only the integers moved: the scales are the calibrated ones
        name: [
            numpy_helper.to_array(i)
            for i in onnx.load(str(p)).graph.initializer
            if i.name.endswith("_scale")
        ]
        for name, p in (("plain", plain), ("learned", dst))
    }
    for a, b in zip(scales["plain"], scales["learned"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_learned_weights_survive_lowering_to_tflite(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="LiteRT not installed")
    from compressor.passes.held_back import run_model_file_outputs
    from targets.tflite import TARGET
    from targets.tflite.capabilities import TFLITE_SCHEME
    from targets.tflite.options import TfliteOptions

    fp32 = export_module(hard_layer_cnn(), SPEC, tmp_path)
    qdq = tmp_path / "q.onnx"
    learned = Int8Config(equalize=False, smooth=False, learned_rounding=True, rounding_time=10)
    info = quantize_int8_static(fp32, qdq, _data(64), TFLITE_SCHEME, "minmax", 8, config=learned)
    assert info["steps"]["learned_rounding"]["applied"], info["steps"]
    artifact = TARGET.lower(qdq, "int8", tmp_path, TfliteOptions())
    runner = TARGET.open_runner(artifact.path, 1, TfliteOptions())
    fresh = _data(16, seed=2)
    got = np.concatenate(
        [next(iter(runner.run({"input": x[None]}).values())) for x in fresh.inputs["input"]]
    )
    want = run_model_file_outputs(qdq, fresh, 8)[0]
    model = onnx.load(str(qdq))
    scale = next(
        numpy_helper.to_array(i) for i in model.graph.initializer if i.name == "linear_scale"
    )
    assert np.abs(got - want).max() <= 1.0001 * float(scale)  # ≤ 1 LSB of the output


def test_w4a8_learned_rounding_beats_plain_4_bit(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()
    fp32 = export_module(model, SPEC, tmp_path)
    plain, learned = tmp_path / "plain4.onnx", tmp_path / "learned4.onnx"
    four = dict(equalize=False, smooth=False, bias_correction=False, weight_bits=4)
    config = Int8Config(**four, learned_rounding=True, rounding_time=20)
    quantize_int8_static(
        fp32, plain, _data(64), ORT_CPU_SCHEME, "minmax", 8, config=Int8Config(**four)
    )
    info = quantize_int8_static(
        fp32, learned, _data(64), ORT_CPU_SCHEME, "minmax", 8, config=config
    )
    assert info["steps"]["weight_bits"] == {
        "bits": 4,
        "layers": 3,
        "range": [-7, 7],
        "storage": "int8",
    }
    for path in (plain, learned):  # 4-bit values in the int8 initializers of every weight
        ints = [
            numpy_helper.to_array(i)
            for i in onnx.load(str(path)).graph.initializer
            if i.name.endswith("weight_quantized")
        ]
        assert len(ints) == 3 and all(np.abs(w).max() == 7 for w in ints)
    assert info["steps"]["learned_rounding"]["applied"], info["steps"]
    fresh = _data(32, seed=1)
    assert output_sqnr(fp32, learned, fresh) > output_sqnr(fp32, plain, fresh) + 1.0
