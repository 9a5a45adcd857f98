"""Per-op differential tests: tiny ONNX graphs lowered to .tflite vs onnxruntime, both resolvers."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration.dataset import Dataset
from compressor.passes.quantize import quantize_int8_static
from targets.tflite import TARGET
from targets.tflite.capabilities import TFLITE_SCHEME
from targets.tflite.options import TfliteOptions

RESOLVERS = ["default", "builtin"]
RNG = np.random.default_rng(0)


class GraphBuilder:
    """Chain nodes from input 'x' (dynamic batch) with random constant weights."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, array: np.ndarray) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape: int, scale: float = 0.5) -> str:
        return self.const((RNG.standard_normal(shape) * scale).astype(np.float32))

    def op(
        self, op_type: str, inputs: list[str], outputs: int = 1, **attrs: object
    ) -> str | list[str]:
        self.count += 1
        names = [f"t{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=f"n{self.count}", **attrs))
        return names[0] if outputs == 1 else names

    def conv(self, x: str, cin: int, cout: int, k: int = 3, **attrs: object) -> str:
        group = int(attrs.get("group", 1))
        w, b = self.weight(cout, cin // group, k, k), self.weight(cout, scale=0.1)
        return self.op("Conv", [x, w, b], kernel_shape=[k, k], **attrs)

    def model(self, *outputs: str) -> onnx.ModelProto:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *self.shape[1:]])
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
        graph = helper.make_graph(self.nodes, "case", [x], outs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 9
        model = onnx.shape_inference.infer_shapes(model)
        onnx.checker.check_model(model)
        return model


def case_conv_same():
    g = GraphBuilder((1, 4, 8, 8))
    return g.model(g.op("Relu", [g.conv("x", 4, 8, pads=[1, 1, 1, 1])])), "CONV_2D"


def case_conv_strided_symmetric_pad():
    g = GraphBuilder((1, 4, 8, 8))
    return g.model(g.conv("x", 4, 8, strides=[2, 2], pads=[1, 1, 1, 1])), "PAD"


def case_conv_dilated():
    g = GraphBuilder((1, 4, 8, 8))
    return g.model(g.conv("x", 4, 6, dilations=[2, 2], pads=[2, 2, 2, 2])), "CONV_2D"


def case_depthwise_multiplier():
    g = GraphBuilder((1, 4, 8, 8))
    y = g.conv("x", 4, 8, group=4, pads=[1, 1, 1, 1])
    return g.model(
        g.op("Clip", [y, g.const(np.float32(0)), g.const(np.float32(6))])
    ), "DEPTHWISE_CONV_2D"


def case_grouped_conv():
    g = GraphBuilder((1, 4, 8, 8))
    return g.model(g.conv("x", 4, 6, group=2, pads=[1, 1, 1, 1])), "CONV_2D"


def case_conv_transpose():
    g = GraphBuilder((1, 4, 4, 4))
    w, b = g.weight(4, 3, 3, 3), g.weight(3, scale=0.1)
    y = g.op("ConvTranspose", ["x", w, b], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    return g.model(y), "TRANSPOSE_CONV"


def case_flatten_gemm():
    g = GraphBuilder((1, 4, 4, 4))
    y = g.op("Flatten", [g.conv("x", 4, 6, pads=[1, 1, 1, 1])], axis=1)
    y = g.op("Gemm", [y, g.weight(10, 96, scale=0.1), g.weight(10)], transB=1)
    return g.model(g.op("Softmax", [y], axis=-1)), "FULLY_CONNECTED"


def case_matmul():
    g = GraphBuilder((1, 12))
    y = g.op("MatMul", ["x", g.weight(12, 7)])
    return g.model(g.op("Add", [y, g.weight(7)])), "FULLY_CONNECTED"


def case_residual_add_mul():
    g = GraphBuilder((1, 4, 8, 8))
    a = g.conv("x", 4, 4, pads=[1, 1, 1, 1])
    y = g.op("Add", [a, "x"])
    y = g.op("Mul", [y, g.weight(4, 1, 1)])
    y = g.op("Sub", [y, g.weight(1, 4, 1, 1)])
    return g.model(g.op("Div", [y, g.const(np.float32(2.0))])), "ADD"


def case_activations():
    g = GraphBuilder((1, 4, 6, 6))
    y = g.op("LeakyRelu", [g.conv("x", 4, 4, k=1)], alpha=0.1)
    y = g.op("PRelu", [g.conv(y, 4, 4, k=1), g.weight(4, 1, 1, scale=0.2)])
    y = g.op("HardSwish", [g.conv(y, 4, 4, k=1)])
    y = g.op("HardSigmoid", [g.conv(y, 4, 4, k=1)], alpha=1 / 6, beta=0.5)
    y = g.op("Tanh", [g.conv(y, 4, 4, k=1)])
    y = g.op("Sigmoid", [g.conv(y, 4, 4, k=1)])
    return g.model(
        g.op("Clip", [y, g.const(np.float32(0.2)), g.const(np.float32(0.7))])
    ), "HARD_SWISH"


def case_hard_swish_decomposed():
    g = GraphBuilder((1, 4, 6, 6))
    y = g.conv("x", 4, 4, k=1)
    gate = g.op("HardSigmoid", [y], alpha=1 / 6, beta=0.5)
    return g.model(g.op("Mul", [y, gate])), "HARD_SWISH"


def case_max_pool_padded_ceil():
    g = GraphBuilder((1, 4, 7, 7))
    y = g.op(
        "MaxPool",
        [g.conv("x", 4, 4, k=1)],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        ceil_mode=1,
    )
    return g.model(y), "MAX_POOL_2D"


def case_avg_pool_exclude_pad():
    g = GraphBuilder((1, 4, 8, 8))
    y = g.op(
        "AveragePool",
        [g.conv("x", 4, 4, k=1)],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
    )
    return g.model(y), "AVERAGE_POOL_2D"


def case_avg_pool_include_pad_ceil():
    g = GraphBuilder((1, 4, 7, 7))
    y = g.op(
        "AveragePool",
        [g.conv("x", 4, 4, k=1)],
        kernel_shape=[2, 2],
        strides=[2, 2],
        count_include_pad=1,
        ceil_mode=1,
    )
    return g.model(y), "AVERAGE_POOL_2D"


def case_global_pool_reduce_mean():
    g = GraphBuilder((1, 4, 6, 6))
    a = g.op("GlobalAveragePool", [g.conv("x", 4, 8, pads=[1, 1, 1, 1])])
    b = g.op("ReduceMean", ["x", g.const(np.array([2, 3], np.int64))], keepdims=0)
    a = g.op("Squeeze", [a, g.const(np.array([2, 3], np.int64))])
    return g.model(g.op("Concat", [a, b], axis=1)), "MEAN"


def case_concat_split_slice():
    g = GraphBuilder((1, 4, 8, 8))
    y = g.op("Concat", [g.conv("x", 4, 4, k=1), g.conv("x", 4, 6, k=1)], axis=1)
    a, b = g.op("Split", [y, g.const(np.array([3, 7], np.int64))], outputs=2, axis=1)
    s = g.op(
        "Slice", [b, *(g.const(np.array(v, np.int64)) for v in ([1, 2], [6, 8], [2, 3], [2, 3]))]
    )
    return g.model(a, s), "CONCATENATION"


def case_pad_resize():
    g = GraphBuilder((1, 4, 5, 5))
    pads = g.const(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))
    y = g.op("Pad", [g.conv("x", 4, 4, k=1), pads], mode="constant")
    r = g.op("Pad", ["x", g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], mode="reflect")
    scales = g.const(np.array([1, 1, 2, 2], np.float32))
    near = g.op(
        "Resize",
        [y, "", scales],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    lin = g.op(
        "Resize", [r, "", scales], mode="linear", coordinate_transformation_mode="half_pixel"
    )
    return g.model(near, lin), "RESIZE_BILINEAR"


def case_transpose_reshape():
    g = GraphBuilder((1, 4, 4, 4))
    y = g.op("Transpose", [g.conv("x", 4, 4, k=1)], perm=[0, 2, 3, 1])
    y = g.op("Unsqueeze", [g.op("Relu", [y]), g.const(np.array([1], np.int64))])
    return g.model(y), "RESHAPE"


FLOAT_CASES = {
    name[5:]: fn
    for name, fn in dict(globals()).items()
    if name.startswith("case_") and callable(fn)
}
# Cases whose ops have int8 kernels (the rest fall back to float around DEQUANTIZE).
INT8_CASES = [
    "activations",
    "avg_pool_include_pad_ceil",
    "hard_swish_decomposed",
    "conv_dilated",
    "grouped_conv",
    "matmul",
    "pad_resize",
    "transpose_reshape",
    "conv_same",
    "conv_strided_symmetric_pad",
    "depthwise_multiplier",
    "flatten_gemm",
    "residual_add_mul",
    "max_pool_padded_ceil",
    "avg_pool_exclude_pad",
    "global_pool_reduce_mean",
    "concat_split_slice",
    "conv_transpose",
]


def _inputs(model: onnx.ModelProto, batch: int, seed: int = 1) -> np.ndarray:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [batch] + [d.dim_value for d in dims[1:]]
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _reference(path, x: np.ndarray, optimize: bool = True) -> list[np.ndarray]:
    options = ort.SessionOptions()
    if not optimize:
        # The Q/DQ graph as written (float ops between Q/DQ): onnxruntime's fused
        # QLinearAveragePool divides ceil_mode's partial windows unlike its own float kernel.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def _lowered(path, x, precision, resolver, tmp_path):
    artifact = TARGET.lower(path, precision, tmp_path, TfliteOptions())
    runner = TARGET.open_runner(artifact.path, 1, TfliteOptions(resolver=resolver))
    got = runner.run({"x": x})
    return artifact, [got[spec.name] for spec in runner.outputs]


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("case", sorted(FLOAT_CASES))
def test_float_op_matches_onnxruntime(case, resolver, tmp_path):
    model, expected_op = FLOAT_CASES[case]()
    path = tmp_path / "case.onnx"
    onnx.save(model, path)
    x = _inputs(model, batch=3)
    artifact, got = _lowered(path, x, "fp32", resolver, tmp_path)
    assert artifact.info["op_counts"].get(expected_op, 0) >= 1, artifact.info["op_counts"]
    assert artifact.info["transpose_inner"] == 0
    for want, have in zip(_reference(path, x), got, strict=True):
        assert have.shape == want.shape
        scale = max(float(np.ptp(want)), 1.0)
        np.testing.assert_allclose(have, want, atol=1e-4 * scale, rtol=0)


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("case", INT8_CASES)
def test_int8_op_matches_onnxruntime_qdq(case, resolver, tmp_path):
    model, expected_op = FLOAT_CASES[case]()
    fp32, qdq = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, fp32)
    calib = Dataset({"x": _inputs(model, batch=64, seed=2)})
    quantize_int8_static(fp32, qdq, calib, TFLITE_SCHEME, "minmax", 16)
    x = _inputs(model, batch=8, seed=3)
    artifact, got = _lowered(qdq, x, "int8", resolver, tmp_path)
    ops = artifact.info["op_counts"]
    assert ops.get(expected_op, 0) >= 1 and ops.get("QUANTIZE", 0) >= 1, ops
    for want, have in zip(_reference(qdq, x, optimize=False), got, strict=True):
        spread = max(float(np.ptp(want)), 1e-6)
        # A few int8 steps of the output's range, or of LOGISTIC's fixed 1/256 quantum:
        # kernels round differently from onnxruntime and TFLite fixes some output params.
        assert np.abs(have - want).max() <= max(0.04 * spread, 4 / 256)
        assert np.abs(have - want).mean() <= max(0.005 * spread, 1 / 256)


def test_int8_concat_inputs_are_produced_at_the_concat_scale(tmp_path):
    model, _ = FLOAT_CASES["concat_split_slice"]()
    fp32, qdq = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, fp32)
    calib = Dataset({"x": _inputs(model, batch=64, seed=2)})
    quantize_int8_static(fp32, qdq, calib, TFLITE_SCHEME, "minmax", 16)
    artifact = TARGET.lower(qdq, "int8", tmp_path, TfliteOptions())
    # One QUANTIZE at the input edge; none to requantize the concat's inputs.
    assert artifact.info["op_counts"]["QUANTIZE"] == 1
