"""Ask onnxruntime itself which arithmetic its int8 kernels use here: one tiny Conv whose
weight pairs leave int16, run as shipped and exactly. CPUID can be masked (VMs, containers,
qemu-user shows the real /proc/cpuinfo), and the kernels are what the verdict must match."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from targets.arithmetic.emulate import exact_session
from targets.arithmetic.profiles import AVX2_PAIRS, EXACT, Int8Arithmetic


def _probe_model() -> onnx.ModelProto:
    """u8 input of 255s → DQ → Conv(1x1, weights 127, 127) → Q: 64770 saturates to 32767."""
    inits = [
        numpy_helper.from_array(np.float32(1.0), "s"),
        numpy_helper.from_array(np.uint8(0), "z"),
        numpy_helper.from_array(np.full((1, 2, 1, 1), 127, np.int8), "w"),
        numpy_helper.from_array(np.float32(1.0), "ws"),
        numpy_helper.from_array(np.int8(0), "wz"),
        numpy_helper.from_array(np.float32(512.0), "ys"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"]),
        helper.make_node("Conv", ["xf", "wf"], ["yf"]),
        helper.make_node("QuantizeLinear", ["yf", "ys", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 2, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 1, 1, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def probe_arithmetic() -> Int8Arithmetic:
    """The arithmetic onnxruntime's U8S8 Conv kernel computes in on this machine."""
    model = _probe_model().SerializeToString()
    feeds = {"x": np.full((1, 2, 1, 1), 255, np.uint8)}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    shipped = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    exact = exact_session(model).run(None, feeds)[0]
    return EXACT if np.array_equal(shipped.run(None, feeds)[0], exact) else AVX2_PAIRS
