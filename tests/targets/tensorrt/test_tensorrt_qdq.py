"""The Q/DQ ONNX the pipeline emits for TensorRT, on trained zoo models: placement, symmetry,
TensorRT-RTX parse and build, and proxy accuracy against fp32."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

TRT_ZOO = ["lenet", "resnet", "mobilenet", "transformer"]  # the CNNs and the Transformer
WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
BIAS_INPUT = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2}


class Graph:
    """Producer/initializer lookups over one ONNX graph."""

    def __init__(self, path) -> None:
        self.graph = onnx.load(str(path)).graph
        self.inits = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def nodes(self, *op_types: str) -> list:
        return [n for n in self.graph.node if n.op_type in op_types]

    def from_dq(self, name: str) -> bool:
        node = self.producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear"

    def unquantized(self, name: str) -> str:
        """The float tensor behind a Q -> DQ pair (name itself when it is not dequantized)."""
        if not self.from_dq(name):
            return name
        return self.producer[self.producer[name].input[0]].input[0]

    def is_constant(self, name: str) -> bool:
        node = self.producer.get(name)
        return name in self.inits or (node is not None and node.op_type == "Constant")


def _axis(node) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _output_channel_axis(consumer, weight: np.ndarray) -> int:
    """Conv and Gemm(transB=1) weights keep output channels on axis 0; MatMul B on its last."""
    if consumer.op_type == "MatMul":
        return weight.ndim - 1
    trans_b = next((a.i for a in consumer.attribute if a.name == "transB"), 0)
    return 1 if consumer.op_type == "Gemm" and not trans_b else 0


@pytest.fixture(params=TRT_ZOO)
def qdq(request, zoo_int8):
    out, report = zoo_int8(request.param)
    return request.param, Graph(out / "model.onnx"), report


def test_activations_are_symmetric_int8(qdq):
    name, g, _ = qdq
    quantize = g.nodes("QuantizeLinear")
    assert quantize, f"{name}: no activation was quantized"
    for node in quantize + g.nodes("DequantizeLinear"):
        zero_point = g.inits[node.input[2]]
        assert zero_point.dtype == np.int8, f"{name}: {node.name} is {zero_point.dtype}, not int8"
        assert not zero_point.any(), f"{name}: {node.name} has a non-zero zero point"


def test_weights_are_per_channel_on_the_output_axis(qdq):
    name, g, _ = qdq
    weighted = set()
    for dq in g.nodes("DequantizeLinear"):
        if dq.input[0] not in g.inits:
            continue  # an activation DQ
        weight, scale = g.inits[dq.input[0]], g.inits[dq.input[1]]
        (consumer,) = g.consumers[dq.output[0]]
        assert consumer.op_type in WEIGHTED, f"{name}: weight DQ feeds {consumer.op_type}"
        axis = _output_channel_axis(consumer, weight)
        assert weight.dtype == np.int8
        assert _axis(dq) % weight.ndim == axis, f"{name}: {consumer.name} on axis {_axis(dq)}"
        assert scale.shape == (weight.shape[axis],), f"{name}: {consumer.name} not per-channel"
        weighted.add(consumer.name)
    assert {n.name for n in g.nodes("Conv", "Gemm")} <= weighted
    if name == "transformer":
        assert any(n.name in weighted for n in g.nodes("MatMul"))


def test_weighted_op_inputs_are_quantized_and_bias_is_not(qdq):
    name, g, _ = qdq
    for node in g.nodes(*WEIGHTED):
        assert g.from_dq(node.input[0]) and g.from_dq(node.input[1]), f"{name}: {node.name}"
        bias = BIAS_INPUT.get(node.op_type)
        if bias is not None and len(node.input) > bias:
            assert node.input[bias] in g.inits, f"{name}: bias of {node.name} is not a float init"
            assert g.inits[node.input[bias]].dtype == np.float32


def test_qdq_feeds_only_quantized_ops(qdq):
    """Q/DQ sits only where a quantized op reads it: not after Relu, pooling or the last layer.

    (Other readers of the same tensor, like a Shape, may share the pair.)
    """
    name, g, _ = qdq
    graph_outputs = {o.name for o in g.graph.output}
    for dq in g.nodes("DequantizeLinear"):
        users = {u.op_type for u in g.consumers.get(dq.output[0], [])}
        assert users & (WEIGHTED | {"Add"}), f"{name}: {dq.name} feeds only {users}"
        assert dq.output[0] not in graph_outputs


def _from_weighted(g: Graph, name: str) -> bool:
    """Whether name comes from a weighted op directly or through Adds of constants (a bias)."""
    node = g.producer.get(name)
    while node is not None and node.op_type == "Add" and any(g.is_constant(i) for i in node.input):
        node = g.producer.get(next(i for i in node.input if not g.is_constant(i)))
    return node is not None and node.op_type in WEIGHTED


def test_residual_adds_are_quantized_on_the_skip_input_only(qdq):
    name, g, _ = qdq
    residual = 0
    for node in g.nodes("Add"):
        if any(g.is_constant(i) for i in node.input):
            assert not any(g.from_dq(i) for i in node.input), f"{name}: bias Add {node.name}"
            continue
        residual += 1
        float_inputs = [i for i in node.input if not g.from_dq(i)]
        fusible = [i for i in node.input if _from_weighted(g, g.unquantized(i))]
        if not fusible:  # no Conv/Gemm/MatMul could absorb it: both inputs stay quantized
            assert not float_inputs, f"{name}: {node.name} lost a Q/DQ"
            continue
        assert len(float_inputs) == 1, f"{name}: {node.name} should keep one input float"
        assert float_inputs[0] in fusible, f"{name}: {node.name} float input is the skip"
    expected = {"lenet": 0, "resnet": 4, "mobilenet": 2, "transformer": 4}
    assert residual == expected[name]


def test_tensorrt_rtx_parses_and_builds_it(qdq):
    """On CPU the TensorRT-RTX build check ran; on a GPU machine the real engine build did."""
    name, _, report = qdq
    info = report.artifact_info
    if not info["engine_built"] and "build_check" not in info:
        pytest.skip("tensorrt-rtx is not installed (pip install -e '.[tensorrt-check]')")
    check = info["build"] if info["engine_built"] else info["build_check"]
    assert check["tool"].startswith("tensorrt")
    assert check["parsed"] and check["built"], f"{name}: {check['errors']}"
    assert check["engine_bytes"] > 0
    assert check["seconds"] < 30


def test_proxy_top1_is_within_one_point_of_fp32(qdq):
    name, _, report = qdq
    fp32 = report.fp32_reference.accuracy
    measured = report.compressed.accuracy
    assert fp32 > 0.9, f"{name} trained badly ({fp32:.3f}); the comparison would mean little"
    assert abs(measured - fp32) <= 0.01, f"{name}: int8 {measured:.4f} vs fp32 {fp32:.4f}"
    assert report.compressed.fidelity["top1_agreement"] >= 0.98
    expected_proxy = None if report.artifact_info["engine_built"] else "tensorrt"
    assert report.compressed.proxy_for == expected_proxy
