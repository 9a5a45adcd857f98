"""The five zoo models through the OpenVINO target in fp32 and int8, run in the real runtime.

fp32 is compared with torch (max error ≤ 1e-4 of the output range); int8 with the exact Q/DQ
arithmetic of the same graph (onnxruntime with graph optimizations off: DequantizeLinear → float
ops), in steps of the output's own quantization scale. The models are untrained: the numbers
compared are the same whatever the weights.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from benchmarks.zoo import ZOO_NAMES, build_model, export_program, zoo_data
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from targets.arithmetic import exact_session
from targets.registry import get_target

openvino = pytest.importorskip("openvino", reason="the openvino extra is not installed")
TARGET = get_target("openvino")


@pytest.fixture(scope="module", params=ZOO_NAMES)
def zoo(request, tmp_path_factory):
    """An untrained zoo model, its cleaned fp32 ONNX, its Q/DQ ONNX and 64 eval inputs."""
    name, folder = request.param, tmp_path_factory.mktemp(request.param)
    model = build_model(name).eval()
    torch.export.save(export_program(model, name), str(folder / "model.pt2"))
    loaded = load_model(folder / "model.pt2")
    cleanup_onnx(export_onnx(loaded, loaded.inputs, folder / "raw.onnx"), folder / "f.onnx")
    data = zoo_data(name)
    scheme = TARGET.capabilities.quant_scheme
    quantize_int8_static(folder / "f.onnx", folder / "q.onnx", data["calib"].take(64), scheme)
    x = data["eval"].inputs["x"][:64]
    return {
        "name": name,
        "model": model,
        "fp32": folder / "f.onnx",
        "int8": folder / "q.onnx",
        "x": x,
    }


def _run_openvino(zoo: dict, precision: str, out) -> tuple[np.ndarray, dict]:
    artifact = TARGET.lower(zoo[precision], precision, out)
    with TARGET.open_runner(artifact.path, 1, artifact.options) as runner:
        got = runner.run({runner.inputs[0].name: zoo["x"]})
    return next(iter(got.values())), artifact.info


def _exact_qdq(path, x: np.ndarray) -> np.ndarray:
    session = exact_session(path)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _output_scale(path) -> float:
    """The scale of the QuantizeLinear/DequantizeLinear pair the graph's output comes out of."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    (dq,) = [n for n in graph.node if n.output[0] == graph.output[0].name]
    assert dq.op_type == "DequantizeLinear", dq.op_type
    return float(inits[dq.input[1]])


def test_zoo_fp32_matches_torch(zoo, tmp_path):
    got, info = _run_openvino(zoo, "fp32", tmp_path)
    with torch.inference_mode():
        want = zoo["model"](torch.from_numpy(zoo["x"])).numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.ptp(want)
    assert set(info["layer_precisions"]) == {"f32"}


def test_zoo_int8_matches_the_exact_qdq_reference(zoo, tmp_path):
    got, info = _run_openvino(zoo, "int8", tmp_path)
    want = _exact_qdq(zoo["int8"], zoo["x"])
    lsb = _output_scale(zoo["int8"])
    assert np.abs(got - want).mean() / lsb <= 1.0
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95
    # Every weighted layer reading quantized inputs ran on integer kernels.
    assert info["layer_precisions"].get("u8", 0) + info["layer_precisions"].get("i8", 0) >= 1
