"""Graph cleanup: a graph with control flow has its constant-condition branches folded first."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from compressor.passes.cleanup import cleanup_onnx


def _branch(name: str, scale: float) -> onnx.GraphProto:
    node = helper.make_node("Mul", ["x", f"{name}_s"], [f"{name}_y"])
    const = numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s")
    out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, 4])
    return helper.make_graph([node], name, [], [out], [const])


def _if_model() -> onnx.ModelProto:
    """y = x * 2 behind an If whose condition is a constant (Silero VAD's sample-rate shape)."""
    cond = numpy_helper.from_array(np.array(True), "cond")
    node = helper.make_node(
        "If", ["cond"], ["y"], then_branch=_branch("then", 2.0), else_branch=_branch("else", 3.0)
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [cond],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_constant_if_is_folded_and_outputs_are_kept(tmp_path: Path) -> None:
    src, dst = tmp_path / "if.onnx", tmp_path / "clean.onnx"
    onnx.save(_if_model(), str(src))
    info = cleanup_onnx(src, dst)
    cleaned = onnx.load(str(dst))
    assert "If" not in {n.op_type for n in cleaned.graph.node}
    assert info["nodes_before"] == 1
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x * 2.0)
