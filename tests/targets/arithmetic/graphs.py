"""Tiny Q/DQ graphs with adversarial int8 weights, for comparing arithmetics."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _qdq_input(name: str, scale: float, zero: int, signed: bool) -> tuple[list, list]:
    dtype = np.int8 if signed else np.uint8
    inits = [
        numpy_helper.from_array(np.float32(scale), f"{name}_s"),
        numpy_helper.from_array(dtype(zero), f"{name}_z"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
        helper.make_node(
            "DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"]
        ),
    ]
    return nodes, inits


def adversarial_weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """int8 weights with many large same-sign neighbours (pairs that saturate int16)."""
    w = rng.integers(-128, 128, size=shape)
    big = rng.random(shape) < 0.5
    w[big] = np.sign(w[big] + 0.5) * rng.integers(90, 128, size=int(big.sum()))
    return w.astype(np.int8)


def weighted_model(
    op: str,
    x_shape: tuple[int, ...],
    weight: np.ndarray,
    attrs: dict | None = None,
    x_range: tuple[float, float] = (-1.0, 3.0),
    signed: bool = False,
    bias: bool = True,
    quantize_output: bool = True,
    relu: bool = False,
    y_zero: int = 128,
) -> onnx.ModelProto:
    """x → Q/DQ → op(DQ(int8 weight), int32 bias) → Q/DQ → y, as quantize_static lays it out."""
    attrs = attrs or {}
    lo, hi = x_range
    levels = 255.0
    x_scale = (hi - lo) / levels
    zero = int(round(-lo / x_scale)) + (-128 if signed else 0)
    nodes, inits = _qdq_input("x", x_scale, zero, signed)
    out_axis = {
        "Conv": 0, "ConvTranspose": 1, "MatMul": 1, "Gemm": 0 if attrs.get("transB") else 1
    }[op]  # fmt: skip
    out_ch = weight.shape[out_axis]
    w_scale = np.linspace(0.01, 0.03, out_ch).astype(np.float32)
    inits += [
        numpy_helper.from_array(weight, "w_q"),
        numpy_helper.from_array(w_scale, "w_s"),
        numpy_helper.from_array(np.zeros(out_ch, np.int8), "w_z"),
    ]
    nodes.append(helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=out_axis))
    inputs = ["x_dq", "w"]
    if bias:
        b = np.linspace(-300, 300, out_ch).astype(np.int32)
        inits += [
            numpy_helper.from_array(b, "b_q"),
            numpy_helper.from_array((w_scale * np.float32(x_scale)).astype(np.float32), "b_s"),
            numpy_helper.from_array(np.zeros(out_ch, np.int32), "b_z"),
        ]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b"], axis=0))
        inputs.append("b")
    made = "y_f" if quantize_output else "y"
    nodes.append(helper.make_node(op, inputs, ["y_op" if relu else made], **attrs))
    if relu:
        nodes.append(helper.make_node("Relu", ["y_op"], [made]))
    if quantize_output:
        inits += [
            numpy_helper.from_array(np.float32(0.5), "y_s"),
            numpy_helper.from_array(np.uint8(y_zero), "y_z"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["y_f", "y_s", "y_z"], ["y_q"]),
            helper.make_node("DequantizeLinear", ["y_q", "y_s", "y_z"], ["y"]),
        ]
    graph = helper.make_graph(
        nodes,
        op,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def activation_matmul(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> onnx.ModelProto:
    """Q/DQ(a) @ Q/DQ(b) with both operands activations (attention's u8×u8 MatMul)."""
    nodes_a, inits_a = _qdq_input("a", 4.0 / 255, 0, False)
    nodes_b, inits_b = _qdq_input("b", 4.0 / 255, 0, False)
    inits = [
        numpy_helper.from_array(np.float32(2.0), "y_s"),
        numpy_helper.from_array(np.uint8(0), "y_z"),
    ]
    nodes = (
        nodes_a
        + nodes_b
        + [
            helper.make_node("MatMul", ["a_dq", "b_dq"], ["y_f"]),
            helper.make_node("QuantizeLinear", ["y_f", "y_s", "y_z"], ["y_q"]),
            helper.make_node("DequantizeLinear", ["y_q", "y_s", "y_z"], ["y"]),
        ]
    )
    graph = helper.make_graph(
        nodes,
        "activation_matmul",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, b_shape),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits_a + inits_b + inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def kernel_cases(seed: int = 3) -> dict[str, tuple[onnx.ModelProto, dict[str, np.ndarray]]]:
    """Conv (1, 3 and odd input channels, stride/pad/dilation, auto_pad, groups, depthwise),
    ConvTranspose, Gemm (transA, transB) and MatMul graphs with adversarial weights, each with inputs that push u8 values to 255."""
    rng = np.random.default_rng(seed)
    w = adversarial_weights
    specs = {
        "conv_c1": ("Conv", (2, 1, 9, 9), w(rng, (6, 1, 3, 3)), {"pads": [1, 1, 1, 1]}, {}),
        "conv_c3": ("Conv", (2, 3, 9, 9), w(rng, (6, 3, 3, 3)), {"pads": [1, 1, 1, 1]}, {}),
        "conv_c5_stride_dilation": (
            "Conv", (2, 5, 11, 11), w(rng, (7, 5, 3, 3)),
            {"pads": [2, 1, 0, 2], "strides": [2, 2], "dilations": [2, 2]}, {},
        ),
        "conv_c7_1x1": ("Conv", (2, 7, 6, 6), w(rng, (12, 7, 1, 1)), {}, {}),
        "conv_c32": ("Conv", (1, 32, 6, 6), w(rng, (24, 32, 3, 3)), {"pads": [1, 1, 1, 1]}, {}),
        "conv_groups3": (
            "Conv", (2, 9, 7, 7), w(rng, (6, 3, 3, 3)), {"pads": [1, 1, 1, 1], "group": 3}, {},
        ),
        "conv_depthwise": (
            "Conv", (2, 8, 7, 7), w(rng, (8, 1, 3, 3)), {"pads": [1, 1, 1, 1], "group": 8}, {},
        ),
        "conv_depthwise_x2": (
            "Conv", (2, 4, 7, 7), w(rng, (8, 1, 3, 3)), {"pads": [1, 1, 1, 1], "group": 4}, {},
        ),
        "conv_int8_input": (
            "Conv", (2, 3, 9, 9), w(rng, (6, 3, 3, 3)), {"pads": [1, 1, 1, 1]}, {"signed": True},
        ),
        "conv_relu": (
            "Conv", (2, 3, 9, 9), w(rng, (6, 3, 3, 3)), {"pads": [1, 1, 1, 1]},
            {"relu": True, "y_zero": 0},
        ),
        "conv_float_output": (
            "Conv", (2, 3, 9, 9), w(rng, (6, 3, 3, 3)), {"pads": [1, 1, 1, 1]},
            {"quantize_output": False},
        ),
        "conv1d": ("Conv", (2, 3, 15), w(rng, (6, 3, 5)), {"pads": [2, 2]}, {}),
        "matmul": ("MatMul", (2, 3, 63), w(rng, (63, 20)), {}, {"bias": False}),
        "matmul_float_output": (
            "MatMul", (2, 3, 64), w(rng, (64, 20)), {}, {"bias": False, "quantize_output": False},
        ),
        "gemm_transposed": ("Gemm", (4, 33), w(rng, (10, 33)), {"transB": 1}, {}),
        "gemm": ("Gemm", (4, 33), w(rng, (33, 10)), {}, {}),
        "gemm_transposed_input": ("Gemm", (33, 4), w(rng, (33, 10)), {"transA": 1}, {}),
        "conv_same_upper": (
            "Conv", (2, 3, 10, 10), w(rng, (6, 3, 3, 3)),
            {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, {},
        ),
        "conv_same_lower": (
            "Conv", (2, 3, 10, 10), w(rng, (6, 3, 4, 4)), {"auto_pad": "SAME_LOWER"}, {},
        ),
        "conv_transpose": (
            "ConvTranspose", (2, 6, 5, 5), w(rng, (6, 4, 3, 3)),
            {"strides": [2, 2], "pads": [1, 1, 1, 1]}, {},
        ),
    }  # fmt: skip
    cases = {}
    for name, (op, shape, weight, attrs, options) in specs.items():
        lo, hi = options.get("x_range", (-1.0, 3.0))
        x = rng.uniform(lo, hi, shape).astype(np.float32)
        x[rng.random(shape) < 0.4] = hi
        cases[name] = (weighted_model(op, shape, weight, attrs, **options), {"x": x})
    return cases
