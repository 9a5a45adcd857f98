"""targets/onnx/lower.py, runner.py and io.py: the artifact is the graph, run in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration.dataset import Dataset
from compressor.passes.quantize import quantize_int8_static
from targets.onnx import TARGET
from targets.onnx.io import describe_onnx_io
from targets.onnx.options import OnnxOptions

SAMPLES = np.random.default_rng(1).normal(0, 1, (32, 3, 8, 8)).astype(np.float32)


def _run(path: Path, options: OnnxOptions | None = None) -> np.ndarray:
    with TARGET.open_runner(path, 1, options) as runner:
        return runner.run({"x": SAMPLES})["y"]


def _zero_point_types(path: Path) -> set[int]:
    graph = onnx.load(str(path)).graph
    inits = {i.name: i.data_type for i in graph.initializer}
    return {inits[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear"}


def test_fp32_lowers_into_the_folder_and_runs_as_the_graph_does(conv_onnx: Path, tmp_path: Path):
    artifact = TARGET.lower(conv_onnx, "fp32", tmp_path / "out")
    assert artifact.path == tmp_path / "out" / "model.onnx" and artifact.precision == "fp32"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx"]
    assert artifact.path.read_bytes() == conv_onnx.read_bytes()
    assert artifact.options == OnnxOptions() and artifact.info["runtime"].startswith("onnxruntime")
    np.testing.assert_allclose(_run(artifact.path), _run(conv_onnx), rtol=0, atol=0)


@pytest.mark.parametrize(("activation_type", "zero_point"), [("uint8", 2), ("int8", 3)])
def test_int8_lowers_with_the_options_scheme_and_stays_close_to_fp32(
    conv_onnx: Path, tmp_path: Path, activation_type: str, zero_point: int
):
    options = OnnxOptions(activation_type=activation_type)
    qdq = tmp_path / "qdq.onnx"
    quantize_int8_static(conv_onnx, qdq, Dataset({"x": SAMPLES}), TARGET.quant_scheme(options))
    assert _zero_point_types(qdq) == {zero_point}  # TensorProto.UINT8 = 2, INT8 = 3
    artifact = TARGET.lower(qdq, "int8", tmp_path / "out", options)
    assert artifact.options == options and artifact.path.suffix == ".onnx"
    reference, quantized = _run(conv_onnx), _run(artifact.path, artifact.options)
    assert not np.array_equal(reference, quantized)  # int8 rounding did happen
    cosine = (reference * quantized).sum() / np.linalg.norm(reference) / np.linalg.norm(quantized)
    assert cosine > 0.99 and np.abs(reference - quantized).max() < 0.1 * np.abs(reference).max()


def test_describe_io_keeps_names_dim_names_and_dtypes_of_a_float_graph(conv_onnx: Path):
    io = describe_onnx_io(conv_onnx)
    assert io["inputs"] == [
        {"name": "x", "shape": ["B", 3, 8, 8], "dtype": "float32", "quantization": None}
    ]
    assert io["outputs"] == [
        {"name": "y", "shape": ["B", 4], "dtype": "float32", "quantization": None}
    ]
    assert TARGET.describe_io(conv_onnx) == io


def test_describe_io_gives_scale_and_zero_point_where_integer_io_meets_qdq(tmp_path: Path):
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s_in"),
        numpy_helper.from_array(np.array(128, np.uint8), "z_in"),
        numpy_helper.from_array(np.array(0.1, np.float32), "s_out"),
        numpy_helper.from_array(np.array(-3, np.int8), "z_out"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["q", "s_in", "z_in"], ["f"]),
        helper.make_node("Relu", ["f"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "s_out", "z_out"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "quantized_io",
        [helper.make_tensor_value_info("q", TensorProto.UINT8, [1, 4])],
        [helper.make_tensor_value_info("out", TensorProto.INT8, [1, 4])],
        initializer=inits,
    )
    path = tmp_path / "qio.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    io = describe_onnx_io(path)
    (inp,), (out,) = io["inputs"], io["outputs"]
    assert inp["dtype"] == "uint8" and inp["quantization"] == {
        "scale": pytest.approx(0.05),
        "zero_point": 128,
    }
    assert out["dtype"] == "int8" and out["quantization"] == {
        "scale": pytest.approx(0.1),
        "zero_point": -3,
    }
