"""Q/DQ placement rules on tiny hand-built graphs: residual skip inputs, bias Adds, outputs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from calibration.dataset import Dataset
from compressor.judging.evaluate import output_fidelity
from compressor.passes.quantize import quantize_int8_static
from targets.base import QuantScheme
from targets.onnx.runner import OnnxRuntimeRunner

EXPLICIT = QuantScheme(
    activation_type="int8",
    activation_symmetric=True,
    quantize_bias=False,
    op_types=("Conv", "Gemm", "MatMul", "Add"),
    quantize_outputs=False,
    residual_ops=("Add",),
)
RNG = np.random.default_rng(0)


def _init(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32) * 0.3, name)


def _save(tmp_path, nodes, inits, in_shape, out_shape):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *in_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", *out_shape])
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "fp32.onnx"
    onnx.save(model, path)
    return path


def _quantize(tmp_path, src, in_shape):
    data = Dataset({"x": RNG.standard_normal((64, *in_shape)).astype(np.float32)})
    dst = tmp_path / "q.onnx"
    info = quantize_int8_static(src, dst, data, EXPLICIT, batch_size=16)
    feeds = {"x": data.inputs["x"]}
    fidelity = output_fidelity(
        OnnxRuntimeRunner(src).run(feeds)["y"], OnnxRuntimeRunner(dst).run(feeds)["y"]
    )
    graph = onnx.load(dst).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    return info, graph, producers, fidelity


def test_residual_add_keeps_the_conv_input_float_and_quantizes_the_skip(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    inits = [_init("w1", 4, 4, 3, 3), _init("b1", 4), _init("w2", 4, 4, 3, 3), _init("b2", 4)]
    src = _save(tmp_path, nodes, inits, (4, 5, 5), (4, 5, 5))
    info, graph, producers, fidelity = _quantize(tmp_path, src, (4, 5, 5))
    (add,) = [n for n in graph.node if n.op_type == "Add"]
    assert producers[add.input[0]] == "Conv"  # fusable into the Conv: stays float
    assert producers[add.input[1]] == "DequantizeLinear"  # the skip input is quantized
    assert info["residual_inputs_left_float"] == 1
    assert info["quantize_nodes"] == 2  # x and r1; nothing after the Convs or the last Relu
    floats = {i.name for i in graph.initializer if i.data_type == TensorProto.FLOAT}
    assert all(n.input[2] in floats for n in graph.node if n.op_type == "Conv")  # float bias
    assert fidelity["cosine"] > 0.995


def test_bias_add_after_matmul_stays_float(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["m", "bias"], ["h"]),
        helper.make_node("Add", ["h", "x"], ["y"]),
    ]
    src = _save(tmp_path, nodes, [_init("w", 8, 8), _init("bias", 8)], (3, 8), (3, 8))
    info, graph, producers, fidelity = _quantize(tmp_path, src, (3, 8))
    adds = {n.input[1]: n for n in graph.node if n.op_type == "Add"}
    assert producers[adds["bias"].input[0]] == "MatMul" and "bias" in {
        i.name for i in graph.initializer
    }
    residual = next(n for key, n in adds.items() if key != "bias")
    assert producers[residual.input[0]] == "Add"  # MatMul + bias, fused by TensorRT: float
    assert producers[residual.input[1]] == "DequantizeLinear"
    (matmul,) = [n for n in graph.node if n.op_type == "MatMul"]
    assert all(producers[i] == "DequantizeLinear" for i in matmul.input)
    assert fidelity["cosine"] > 0.995
