"""The ONNX graph as the lowering reads it: nodes, constants, shapes and quantization params."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from targets.tflite.writer import QuantParams

ONNX_DTYPES = {
    1: "float32",
    10: "float16",
    6: "int32",
    7: "int64",
    3: "int8",
    2: "uint8",
    9: "bool",
}


@dataclass
class Node:
    """One ONNX node with its attributes decoded to Python values."""

    op_type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)


@dataclass
class OnnxGraph:
    """A float-looking ONNX graph: Q/DQ folded into `act_quant` and quantized constants."""

    nodes: list[Node]
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple[int | None, ...]]
    dtypes: dict[str, str]
    inputs: list[str]
    outputs: list[tuple[str, str]]  # (public name, internal tensor name)
    act_quant: dict[str, QuantParams] = field(default_factory=dict)
    const_quant: dict[str, QuantParams] = field(default_factory=dict)
    # Tensors whose Q/DQ had an infinite range (kept float by the lowering).
    unquantizable: list[str] = field(default_factory=list)
    # Constants stored fp16 and read through a Cast to float (fp16 weights of a float block).
    half_consts: set[str] = field(default_factory=set)

    def consumers(self) -> dict[str, list[Node]]:
        """Map from tensor name to the nodes reading it."""
        found: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    found.setdefault(name, []).append(node)
        return found

    def is_const(self, name: str) -> bool:
        """True when name is a constant (initializer, Constant node or quantized weight)."""
        return name in self.consts

    def float_const(self, name: str) -> np.ndarray:
        """A constant as float32, dequantized when it was stored quantized."""
        value = self.consts[name]
        quant = self.const_quant.get(name)
        if quant is None:
            return value.astype(np.float32) if value.dtype.kind == "f" else value
        scale, zero = _broadcast(quant, value.ndim)
        return ((value.astype(np.float64) - zero) * scale).astype(np.float32)

    def internal_outputs(self) -> set[str]:
        """Tensor names that are graph outputs."""
        return {internal for _, internal in self.outputs}


def load_graph(model: onnx.ModelProto) -> OnnxGraph:
    """Decode nodes, constants (incl. Constant nodes) and inferred shapes of an ONNX model."""
    model = shape_inference.infer_shapes(model)
    graph = model.graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes, half = [], set()
    for index, proto in enumerate(graph.node):
        attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}
        if proto.op_type == "Constant" and "value" in attrs:
            consts[proto.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        if _is_half_const_cast(proto, attrs, consts):
            consts[proto.output[0]] = consts[proto.input[0]].astype(np.float32)
            half.add(proto.output[0])
            continue
        name = proto.name or f"{proto.op_type}_{index}"
        nodes.append(Node(proto.op_type, name, list(proto.input), list(proto.output), attrs))
    shapes, dtypes = _value_infos(graph)
    inputs = [i.name for i in graph.input if i.name not in consts]
    outputs = [(o.name, o.name) for o in graph.output]
    return OnnxGraph(nodes, consts, shapes, dtypes, inputs, outputs, half_consts=half)


def _is_half_const_cast(proto: onnx.NodeProto, attrs: dict, consts: dict) -> bool:
    """Cast(fp16 constant → float): fp16-stored weights, folded into a float constant."""
    if proto.op_type != "Cast" or attrs.get("to") != onnx.TensorProto.FLOAT:
        return False
    source = consts.get(proto.input[0])
    return source is not None and source.dtype == np.float16


def _value_infos(graph: onnx.GraphProto) -> tuple[dict, dict]:
    shapes, dtypes = {}, {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor = info.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        shapes[info.name] = tuple(
            d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim
        )
        dtypes[info.name] = ONNX_DTYPES.get(tensor.elem_type, "float32")
    return shapes, dtypes


def _broadcast(quant: QuantParams, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    scale = np.asarray(quant.scale, dtype=np.float64)
    zero = np.asarray(quant.zero_point, dtype=np.float64)
    if scale.size > 1:
        shape = [1] * ndim
        shape[quant.axis] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return scale, zero
