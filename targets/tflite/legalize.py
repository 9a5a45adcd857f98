"""int8 constraints and op versions LiteRT enforces, as tables (see shared/notes/tflite-lowering).

- FIXED_OUTPUT: kernels that refuse to prepare unless their output has these params.
- SAME_AS_INPUT: ops whose output must reuse the input's params (else silent garbage).
- op_version: the version op_version.cc assigns for the tensor types in play; a version too
  high fails at load, one too low trips older runtimes and delegates.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from targets.tflite.graph import Node, OnnxGraph
from targets.tflite.writer import QuantParams

ACT = schema.ActivationFunctionType
NO_ACTIVATION = ACT.NONE
T = schema.TensorType

FIXED_OUTPUT = {
    "SOFTMAX": QuantParams.per_tensor(1.0 / 256.0, -128),
    "LOGISTIC": QuantParams.per_tensor(1.0 / 256.0, -128),
    "TANH": QuantParams.per_tensor(1.0 / 128.0, 0),
}
SAME_AS_INPUT = {
    "MAX_POOL_2D",
    "AVERAGE_POOL_2D",
    "RESHAPE",
    "TRANSPOSE",
    "PAD",
    "PADV2",
    "SQUEEZE",
    "EXPAND_DIMS",
    "SLICE",
    "STRIDED_SLICE",
    "SPLIT",
    "SPLIT_V",
    "RESIZE_NEAREST_NEIGHBOR",
}
# Versions op_version.cc gives int8 kernels (input int8); an op not listed stays at 1.
INT8_VERSIONS = {
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 3,
    "FULLY_CONNECTED": 4,
    "TRANSPOSE_CONV": 2,
    "BATCH_MATMUL": 2,
    "GELU": 2,
    "DEQUANTIZE": 2,
    **dict.fromkeys(
        (
            "ADD",
            "SUB",
            "MUL",
            "MAX_POOL_2D",
            "AVERAGE_POOL_2D",
            "TRANSPOSE",
            "STRIDED_SLICE",
            "TANH",
            "LOGISTIC",
            "PAD",
            "PADV2",
            "CONCATENATION",
            "SOFTMAX",
            "MEAN",
            "MIRROR_PAD",
            "REDUCE_MAX",
            "RELU6",
            "RELU",
            "MAXIMUM",
            "MINIMUM",
            "SPLIT",
            "SPLIT_V",
            "RESIZE_BILINEAR",
            "RESIZE_NEAREST_NEIGHBOR",
        ),
        2,
    ),
}
# Float activations with int8 weights (dynamic-range "hybrid" kernels): (plain, per-channel).
HYBRID_VERSIONS = {
    "CONV_2D": (2, 5),
    "DEPTHWISE_CONV_2D": (4, 6),
    "FULLY_CONNECTED": (3, 12),
}
FUSABLE_CLIPS = {(0.0, 6.0): ACT.RELU6, (-1.0, 1.0): ACT.RELU_N1_TO_1}


# Ops whose first registered version is above 1 (op_version.cc starts them there).
MIN_VERSIONS = {"BROADCAST_TO": 2}


def op_version(op: str, inputs: list[int | None], outputs: list[str]) -> int:
    """The version op_version.cc gives op for these input tensor types and output dtypes."""
    return max(_type_version(op, inputs), MIN_VERSIONS.get(op, 1))


def _type_version(op: str, inputs: list[int | None]) -> int:
    first = inputs[0] if inputs else None
    if op == "DEQUANTIZE" and first == T.FLOAT16:
        return 3
    if first == T.INT8:
        return INT8_VERSIONS.get(op, 1)
    if op in HYBRID_VERSIONS and len(inputs) > 1 and inputs[1] == T.INT8:
        return HYBRID_VERSIONS[op][0]
    return 1


def fusable_activation(node: Node, graph: OnnxGraph) -> int | None:
    """The fused-activation code for a Relu or Clip(0,6)/Clip(-1,1) node, None otherwise."""
    if node.op_type == "Relu":
        return ACT.RELU
    if node.op_type != "Clip":
        return None
    bounds = clip_bounds(node, graph)
    return FUSABLE_CLIPS.get(bounds) if bounds is not None else None


def clip_bounds(node: Node, graph: OnnxGraph) -> tuple[float, float] | None:
    """(min, max) of a Clip with constant bounds (opset 6 attributes or opset 11+ inputs)."""
    low, high = node.attrs.get("min", -np.inf), node.attrs.get("max", np.inf)
    names = node.inputs[1:]
    for index, name in enumerate(names):
        if not name:
            continue
        if not graph.is_const(name):
            return None
        bound = float(graph.float_const(name).reshape(-1)[0])
        low, high = (bound, high) if index == 0 else (low, bound)
    return float(low), float(high)


def output_quant(
    op: str, input_quant: QuantParams | None, wanted: QuantParams | None
) -> QuantParams | None:
    """The params an int8 op's output must carry: fixed, same as input, or the calibrated ones."""
    if op in FIXED_OUTPUT:
        return FIXED_OUTPUT[op]
    if op in SAME_AS_INPUT and input_quant is not None:
        return input_quant
    return wanted
