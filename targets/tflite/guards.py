"""What the tflite lowering refuses before any work, as tables: graph I/O types it cannot
exchange, zero-sized tensors, and node attributes (or attribute values) no rule maps.

The rules read every attribute of the current ONNX definition of their op except those in
`ATTRIBUTE_LIMITS`: for the ops listed there, an attribute missing from the op's entry, or a
value its predicate rejects (training modes, antialias, CRD space-to-depth), is refused with
its name instead of being dropped. Legacy attributes of old opsets (broadcast/axis on
arithmetic, Pad's paddings, Clip's min/max, Softmax's 2-D coercion) are first upgraded away
by `upgrade_opset`. Audited against onnx's node test cases: benchmarks/tflite_node_audit.py.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper, version_converter

from foundation.errors import UnsupportedOp
from targets.tflite.graph import Node, OnnxGraph

# Older models are upgraded to this opset, whose op definitions the rules implement.
MIN_OPSET = 13
# ONNX element types a .tflite graph input/output can carry as they are.
IO_TYPES = {
    TensorProto.FLOAT,
    TensorProto.INT32,
    TensorProto.INT64,
    TensorProto.BOOL,
    TensorProto.UINT8,
}


def _text(value: object) -> object:
    return value.decode() if isinstance(value, bytes) else value


def _is(*allowed: object):
    """Predicate: the attribute value is one of allowed."""
    return lambda value: _text(value) in allowed


# op → {attribute: None (any value is lowered) or predicate (the values that are)}.
POOL = {"kernel_shape": None, "strides": None, "pads": None, "auto_pad": None, "ceil_mode": None}
ATTRIBUTE_LIMITS: dict[str, dict] = {
    "MaxPool": {**POOL, "dilations": None, "storage_order": None},
    "AveragePool": {**POOL, "count_include_pad": None, "dilations": None},
    "Conv": {**POOL, "dilations": None, "group": None},
    "ConvTranspose": {**POOL, "dilations": None, "group": None, "output_padding": None}
    | {"output_shape": None},
    "BatchNormalization": {"epsilon": None, "momentum": None, "training_mode": _is(0)},
    "Dropout": {"ratio": None, "seed": None},
    "SpaceToDepth": {"blocksize": None, "mode": _is("DCR")},
    "Resize": {
        "mode": None,
        "coordinate_transformation_mode": None,
        "nearest_mode": None,
        "antialias": _is(0),
        "exclude_outside": _is(0),
        "cubic_coeff_a": None,
        "extrapolation_value": None,
        "keep_aspect_ratio_policy": None,
        "axes": None,
    },
    "Cast": {"to": None, "saturate": None, "round_mode": None},
}


def upgrade_opset(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Models below MIN_OPSET converted with onnx's version converter (kept when it fails:
    the attribute checks then refuse what the rules cannot read)."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    if opset >= MIN_OPSET:
        return model, []
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # noqa: BLE001 - the converter raises many types
        return model, [f"tflite: opset {opset} kept ({type(exc).__name__} upgrading it)."]
    return upgraded, [f"tflite: opset {opset} upgraded to {MIN_OPSET} before lowering."]


def check_io(model: onnx.ModelProto) -> None:
    """Refuse graph inputs/outputs a .tflite cannot exchange (sequences, optionals, strings,
    doubles, 8/16-bit integers, fp16)."""
    initializers = {i.name for i in model.graph.initializer}
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if value.name in initializers:
                continue
            if not value.type.HasField("tensor_type"):
                raise UnsupportedOp(
                    f"Graph {kind} '{value.name}' is not a tensor (a sequence or optional); "
                    "tflite exchanges tensors only."
                )
            elem = value.type.tensor_type.elem_type
            if elem == TensorProto.UINT8 and not _only_cast(model, value.name):
                raise UnsupportedOp(
                    f"Graph {kind} '{value.name}' is uint8 and read by more than a Cast; the "
                    "tflite target takes raw uint8 data (e.g. image bytes) only into a Cast."
                )
            if elem not in IO_TYPES:
                raise UnsupportedOp(
                    f"Graph {kind} '{value.name}' has type {helper.tensor_dtype_to_string(elem)}; "
                    "the tflite target exchanges float32, int32, int64, bool and uint8 tensors. Cast it "
                    "in the model or use --target onnx."
                )


def _only_cast(model: onnx.ModelProto, name: str) -> bool:
    """True when every node reading `name` is a Cast (and one does)."""
    readers = [n.op_type for n in model.graph.node if name in n.input]
    return bool(readers) and all(op == "Cast" for op in readers)


def check_graph(graph: OnnxGraph) -> None:
    """Refuse zero-sized runtime tensors and attributes no rule maps, naming node and value."""
    for name, shape in graph.shapes.items():
        if 0 in shape and not graph.is_const(name):
            raise UnsupportedOp(
                f"Tensor '{name}' has a zero-sized dim {list(shape)}; tflite tensors are not empty."
            )
    for node in graph.nodes:
        _check_attributes(node)


def _check_attributes(node: Node) -> None:
    limits = ATTRIBUTE_LIMITS.get(node.op_type)
    if limits is None:
        return
    for key, value in node.attrs.items():
        if key not in limits:
            raise UnsupportedOp(
                f"{node.op_type} '{node.name}' sets attribute '{key}', which the tflite lowering "
                f"does not map (it handles {sorted(limits)})."
            )
        check = limits[key]
        if check is not None and not check(value):
            raise UnsupportedOp(
                f"{node.op_type} '{node.name}' has {key}={_text(value)!r}; the tflite target "
                "does not lower that value."
            )
