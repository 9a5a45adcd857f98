"""Per-layer tracing of a lowered .tflite (`compress debug`): every tensor back in ONNX terms."""

from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest

from calibration.activations import iterate_activations
from calibration.dataset import Dataset
from compressor.debug.stages import NOT_IN_ARTIFACT, compare_tensor, layer_stages
from compressor.passes.quantize import quantize_int8_static
from targets.tflite import TARGET
from targets.tflite.capabilities import TFLITE_SCHEME
from targets.tflite.options import TfliteOptions
from tests.targets.tflite.test_ops import GraphBuilder, _inputs


def small_cnn() -> onnx.ModelProto:
    """Conv+Relu (fused), depthwise conv, max pool, flatten, Gemm on a non-square 6x10 input:
    a layout left NHWC, or flattened columns left in NHWC order, cannot match by accident."""
    g = GraphBuilder((1, 3, 6, 10))
    y = g.op("Relu", [g.conv("x", 3, 8, pads=[1, 1, 1, 1])])
    y = g.conv(y, 8, 8, pads=[1, 1, 1, 1], group=8)
    y = g.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = g.op("Flatten", [y], axis=1)
    return g.model(g.op("Gemm", [y, g.weight(5, 120, scale=0.1), g.weight(5)], transB=1))


def _onnx_tensors(path, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    values, _ = next(iterate_activations(path, Dataset({"x": x}), len(x), names))
    return values


def test_fp32_tflite_layers_match_onnx(tmp_path):
    path = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), path)
    artifact = TARGET.lower(path, "fp32", tmp_path, TfliteOptions())
    x = _inputs(onnx.load(path), batch=5)
    traced = TARGET.trace_layers(artifact, {"x": x})
    reference = _onnx_tensors(path, x, [n for n in traced if n != "x"])
    produced = [o for node in onnx.load(path).graph.node for o in node.output]
    fused_away = {produced[0]}  # the Conv output before its Relu lives only inside CONV_2D
    assert set(produced) - set(traced) == fused_away
    for name in produced[1:]:
        value, where = traced[name]
        assert value.shape == reference[name].shape, name
        assert compare_tensor(reference[name], value).sqnr_db > 100, (name, where)
    assert traced[produced[1]][1] == "op 1 CONV_2D+Relu"  # op 0 is the input TRANSPOSE
    assert "DEPTHWISE_CONV_2D" in traced[produced[2]][1]


def test_int8_tflite_layers_match_the_qdq_graph(tmp_path):
    fp32, qdq = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    onnx.save(small_cnn(), fp32)
    calib = Dataset({"x": _inputs(onnx.load(fp32), batch=64, seed=2)})
    quantize_int8_static(fp32, qdq, calib, TFLITE_SCHEME, "minmax", 16)
    artifact = TARGET.lower(qdq, "int8", tmp_path, TfliteOptions())
    names = [o for node in onnx.load(fp32).graph.node for o in node.output]
    stages = layer_stages(fp32, qdq, calib, names, 16, partial(TARGET.trace_layers, artifact))
    mapped = [n for n in names if "sqnr_db" in stages[n]["artifact"]]
    assert len(mapped) >= 4
    for name in mapped:  # the file computes what the Q/DQ graph computes, layer by layer
        qdq_db, art_db = stages[name]["qdq"]["sqnr_db"], stages[name]["artifact"]["sqnr_db"]
        assert art_db > 15 and abs(art_db - qdq_db) < 3, (name, stages[name])


def test_a_tensor_the_lowering_fused_away_is_reported_not_dropped(tmp_path):
    g = GraphBuilder((1, 4, 6, 6))
    y = g.conv("x", 4, 4, k=1)
    gate = g.op("HardSigmoid", [y], alpha=1 / 6, beta=0.5)  # folded into HARD_SWISH
    model = g.model(g.op("Mul", [y, gate]))
    fp32, qdq = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, fp32)
    calib = Dataset({"x": _inputs(model, batch=32, seed=2)})
    quantize_int8_static(fp32, qdq, calib, TFLITE_SCHEME, "minmax", 16)
    artifact = TARGET.lower(qdq, "int8", tmp_path, TfliteOptions())
    names = [y, gate, model.graph.output[0].name]
    stages = layer_stages(fp32, qdq, calib, names, 16, partial(TARGET.trace_layers, artifact))
    assert stages[gate]["artifact"]["status"] == NOT_IN_ARTIFACT
    assert "sqnr_db" in stages[gate]["qdq"]  # the Q/DQ graph still has it
    assert "HARD_SWISH" in stages[names[2]]["artifact"]["op"]
    assert stages[names[2]]["artifact"]["sqnr_db"] > 20


def test_a_file_not_lowered_here_is_not_traced(tmp_path):
    path = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), path)
    artifact = TARGET.lower(path, "fp32", tmp_path, TfliteOptions())
    copy = tmp_path / "elsewhere.tflite"
    copy.write_bytes(artifact.path.read_bytes())
    moved = type(artifact)(copy, artifact.target, artifact.precision)
    assert TARGET.trace_layers(moved, {"x": _inputs(onnx.load(path), batch=2)}) is None


@pytest.mark.parametrize("nhwc_io", [False, True])
def test_graph_input_and_output_come_back_in_the_onnx_layout(tmp_path, nhwc_io):
    path = tmp_path / "cnn.onnx"
    onnx.save(small_cnn(), path)
    options = TARGET.parse_options({"nhwc_io": str(nhwc_io).lower()})
    artifact = TARGET.lower(path, "fp32", tmp_path, options)
    x = _inputs(onnx.load(path), batch=3)
    traced = TARGET.trace_layers(artifact, {"x": x})
    np.testing.assert_array_equal(traced["x"][0], x)
    output = onnx.load(path).graph.output[0].name
    want = _onnx_tensors(path, x, [output])[output]
    np.testing.assert_allclose(traced[output][0], want, rtol=1e-4, atol=1e-4)
