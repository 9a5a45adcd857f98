"""Which int8 arithmetic OpenVINO's CPU plugin has here: exact int32 sums, or u8×s8 pairs of
adjacent input channels summed in a saturating int16 (x86 without VNNI).

`python -m benchmarks.openvino_arithmetic` prints one row per Q/DQ graph: inputs at u8 255,
int8 weights in a sign pattern along the input channels, OpenVINO against the exact Q/DQ
arithmetic (onnxruntime with graph optimizations off). Run it natively and as
`qemu-x86_64 -cpu Haswell $(which python) -m benchmarks.openvino_arithmetic` for AVX2-only x86;
targets/openvino/README.md has both tables.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from targets.openvino.runner import compile_ir, core, cpu_config

CIN = 64
# (label, op, kernel, sign pattern repeated along the input channels)
CASES = [
    ("1x1 conv, all +127", "conv", 1, (1,)),
    ("3x3 conv, all +127", "conv", 3, (1,)),
    ("MatMul, all +127", "matmul", 1, (1,)),
    ("1x1 conv, ++-- (pairs 2i,2i+1 clip to -1 per quad)", "conv", 1, (1, 1, -1, -1)),
    ("1x1 conv, +--+ (pairs 2i+1,2i+2 would clip)", "conv", 1, (1, -1, -1, 1)),
    ("depthwise 3x3, all +127", "dw", 3, (1,)),
]


def qdq_graph(op: str, kernel: int, signs: tuple[int, ...]) -> tuple[onnx.ModelProto, list[int]]:
    """x → Q/DQ (u8, scale 1/255) → Conv/MatMul with int8 weights 127·sign (scale 0.01)."""
    cout = CIN if op == "dw" else 4
    pattern = np.resize(np.array(signs, np.int8), CIN) * 127
    if op == "matmul":
        weights, axis, x_shape, y_shape = (
            np.tile(pattern[:, None], (1, cout)),
            1,
            [4, CIN],
            [4, cout],
        )
    else:
        per_out = np.ones((cout, 1), np.int8) * (127 if op == "dw" else pattern)
        weights = np.broadcast_to(per_out[..., None, None], (*per_out.shape, kernel, kernel))
        axis, x_shape, y_shape = 0, [1, CIN, 6, 6], [1, cout, 6, 6]
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(weights, np.int8), "w"),
        numpy_helper.from_array(np.full(cout, 0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(cout, np.int8), "w_zero"),
        numpy_helper.from_array(np.float32(1 / 255), "x_scale"),
        numpy_helper.from_array(np.uint8(0), "x_zero"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=axis),
    ]
    if op == "matmul":
        nodes.append(helper.make_node("MatMul", ["xd", "wd"], ["y"]))
    else:
        group = CIN if op == "dw" else 1
        nodes.append(
            helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[kernel // 2] * 4, group=group)
        )
    graph = helper.make_graph(
        nodes, op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model, x_shape


def compare(model: onnx.ModelProto, x_shape: list[int]) -> tuple[float, float]:
    """(max |exact|, max |OpenVINO - exact|) on inputs of 1.0 (u8 255)."""
    x = np.ones(x_shape, np.float32)
    data = model.SerializeToString()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    exact = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    want = exact.run(None, {"x": x})[0]
    compiled = compile_ir(core().read_model(data, b""), cpu_config(1), "probe")
    got = compiled.create_infer_request().infer({0: x})[0]
    return float(np.abs(want).max()), float(np.abs(got - want).max())


def main() -> int:
    """Print the table in Markdown."""
    print("| Q/DQ graph, inputs at u8 255 | max exact | max error |\n|---|---|---|")
    for label, op, kernel, signs in CASES:
        peak, error = compare(*qdq_graph(op, kernel, signs))
        print(f"| {label} | {peak:.2f} | {error:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
