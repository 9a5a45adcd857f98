"""Dynamically quantized graphs (MatMulInteger) in each arithmetic: the emulation of this host's
arithmetic matches its real kernels, on AVX2-only and VNNI hosts alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from targets.arithmetic import (
    ARITHMETICS,
    AVX2_PAIRS,
    EXACT,
    arithmetic_model,
    exact_session,
    host_cpu,
    unemulated_nodes,
)


def _dynamic_model(tmp_path: Path) -> onnx.ModelProto:
    """MatMul then Gemm(transB) with wide weights, quantized by quantize_dynamic (per tensor)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(64, 16)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.ones(8, np.float32), "b"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"]),
        helper.make_node("Gemm", ["y", "w2", "b"], ["z"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "f.onnx"))
    quantize_dynamic(
        str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), weight_type=QuantType.QInt8
    )
    return onnx.load(str(tmp_path / "q.onnx"))


def _run(model: onnx.ModelProto, arithmetic, x: np.ndarray) -> np.ndarray:
    session = exact_session(arithmetic_model(model, arithmetic).SerializeToString())
    return session.run(None, {"x": x})[0]


def test_dynamic_emulation_matches_this_hosts_kernels(tmp_path: Path):
    model = _dynamic_model(tmp_path)
    assert unemulated_nodes(model) == []
    x = (np.random.default_rng(1).normal(size=(5, 64)) * 3).astype(np.float32)
    shipped = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    real = shipped.run(None, {"x": x})[0]
    here = host_cpu().arithmetic
    here = ARITHMETICS[here] if isinstance(here, str) else here
    np.testing.assert_allclose(_run(model, here, x), real, rtol=0, atol=1e-3)
    # per-tensor 8-bit weights of normal values put pairs at risk: the arithmetics differ
    assert np.abs(_run(model, AVX2_PAIRS, x) - _run(model, EXACT, x)).max() > 1.0


def test_integer_ops_it_cannot_model_are_named():
    node = helper.make_node("ConvInteger", ["a", "b"], ["c"], name="conv_int")
    graph = helper.make_graph([node], "g", [], [])
    found = unemulated_nodes(helper.make_model(graph))
    assert [(n["node"], n["op"]) for n in found] == [("conv_int", "ConvInteger")]
    assert "not emulated" in found[0]["why"]
