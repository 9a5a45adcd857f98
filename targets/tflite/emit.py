"""The lowering context: maps ONNX tensors to TFLite tensors and inserts edge conversions.

Rules ask for an input in the layout and dtype they need (`ctx.get`); a QUANTIZE, DEQUANTIZE or
TRANSPOSE is emitted only when the value is not already in that form, and cached so each
conversion happens once per tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from targets.tflite import legalize
from targets.tflite.graph import Node, OnnxGraph
from targets.tflite.layout import NHWC, PLAIN, Layout, transpose_perm
from targets.tflite.writer import FlatModelBuilder, QuantParams, make_options

# Tensor dtypes that are data, not quantized values: ops read them as they are.
NON_FLOAT = {"int32", "int64", "bool", "uint8"}


@dataclass(frozen=True)
class Value:
    """One TFLite tensor standing for an ONNX tensor: index, layout, dtype, quant, ONNX shape."""

    tensor: int
    layout: Layout
    dtype: str
    quant: QuantParams | None
    shape: tuple


@dataclass
class LoweringOptions:
    """What the target options ask of the lowering."""

    precision: str = "fp32"
    nhwc_io: bool = False
    int8_io: bool = False
    lstm: str = "auto"


@dataclass
class Lowering:
    """State while lowering one graph: the builder, ONNX→TFLite values and skipped nodes."""

    graph: OnnxGraph
    options: LoweringOptions
    builder: FlatModelBuilder = field(default_factory=FlatModelBuilder)
    values: dict[str, Value] = field(default_factory=dict)
    converted: dict[tuple, Value] = field(default_factory=dict)
    fused: set[str] = field(default_factory=set)
    transposes: dict[str, int] = field(default_factory=lambda: {"edge": 0, "inner": 0})
    notes: list[str] = field(default_factory=list)
    # Layout of each public input/output tensor (by tensor index), recorded in the file.
    public_layouts: dict[int, Layout] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.consumers = self.graph.consumers()
        self.graph_outputs = self.graph.internal_outputs()

    @property
    def int8(self) -> bool:
        """Full-integer mode (the graph came with Q/DQ)."""
        return self.options.precision == "int8"

    def shape(self, name: str) -> tuple:
        """The inferred ONNX shape of a tensor (None marks a dynamic dim)."""
        return self.graph.shapes[name]

    def new_value(
        self, name: str, shape: tuple, layout: Layout, dtype: str, quant: QuantParams | None
    ) -> Value:
        """Add a runtime tensor for ONNX tensor `name` laid out as layout."""
        flat = layout.shape(shape)
        signature = tuple(-1 if d is None else int(d) for d in flat)
        dims = tuple(1 if d is None else int(d) for d in flat)
        index = self.builder.add_tensor(name, dims, dtype, quant=quant, signature=signature)
        return Value(index, layout, dtype, quant, tuple(shape))

    def output(
        self, name: str, layout: Layout, quantized: bool, quant: QuantParams | None = None
    ) -> Value:
        """Create and register the value of node output `name` (int8 with its params if quantized)."""
        params = (
            (quant or self._concat_params(name) or self.graph.act_quant.get(name))
            if quantized
            else None
        )
        dtype = "int8" if params else self.plain_dtype(name)
        value = self.new_value(name, self.shape(name), layout, dtype, params)
        self.values[name] = value
        return value

    def plain_dtype(self, name: str) -> str:
        """The unquantized dtype of an ONNX tensor: its own for ints and bools, else float32."""
        dtype = self.graph.dtypes.get(name, "float32")
        return dtype if dtype in NON_FLOAT else "float32"

    def settle(self, name: str, fixed_output: bool = False) -> None:
        """Honour a narrower calibrated range than the one an op's output inherited.

        onnxruntime deletes a Relu/Clip after ops such as Transpose, MaxPool or Sigmoid and
        moves the clamp into their output Q/DQ (a range starting at 0 for Relu/Clip(0, hi));
        where the lowering gave that output other params (TFLite's same-as-input or fixed
        output params), one int8→int8 QUANTIZE to the calibrated params restores the clamp.
        Fixed-output kernels (LOGISTIC, TANH) always take the calibrated range when narrower.
        """
        value, wanted = self.values.get(name), self.graph.act_quant.get(name)
        if value is None or value.dtype != "int8" or wanted is None or len(wanted.scale) > 1:
            return
        low, high = _real_range(value.quant)
        want_low, want_high = _real_range(wanted)
        step = value.quant.scale[0]
        narrower = want_low > low + step or want_high < high - step
        clamps_at_zero = wanted.zero_point[0] == -128
        if narrower and (fixed_output or clamps_at_zero):
            self.values[name] = self.get(name, None, "int8", wanted)

    def _concat_params(self, name: str) -> QuantParams | None:
        """Concat scale unification: a tensor only a Concat reads is produced at the Concat's
        output params, so CONCATENATION needs no requantizing QUANTIZE for it."""
        readers = self.consumers.get(name, [])
        if len(readers) != 1 or readers[0].op_type != "Concat" or name in self.graph_outputs:
            return None
        return self.graph.act_quant.get(readers[0].outputs[0])

    def const(
        self, name: str, array: np.ndarray, dtype: str, quant: QuantParams | None = None
    ) -> int:
        """Add a constant tensor and return its index."""
        return self.builder.add_tensor(name, array.shape, dtype, data=array, quant=quant)

    def scalar(self, name: str, value: float, dtype: str = "float32") -> int:
        """A one-element constant (broadcasts against any tensor)."""
        return self.const(name, np.array([value], dtype=dtype), dtype)

    def step(
        self,
        op: str,
        inputs: list[int],
        name: str,
        like: Value,
        options: tuple[int, object] | None = None,
        dtype: str = "float32",
        shape: tuple | None = None,
    ) -> Value:
        """One op of a decomposition: an unquantized tensor laid out (and shaped) like `like`."""
        out = self.new_value(name, like.shape if shape is None else shape, like.layout, dtype, None)
        self.emit(op, inputs, [out], options)
        return out

    def shape_const(self, name: str, dims: list[int] | tuple[int, ...]) -> int:
        """An int32 1-D constant (shapes, axes, paddings)."""
        return self.const(name, np.asarray(dims, dtype=np.int32), "int32")

    def quantized(self, node: Node) -> bool:
        """Lower this node in int8: int8 mode and every runtime input/output has Q/DQ params."""
        if not self.int8:
            return False
        names = [n for n in node.inputs if n and not self.graph.is_const(n)]
        names += [n for n in node.outputs[:1]]
        return all(n in self.graph.act_quant or self._value_quant(n) for n in names)

    def _value_quant(self, name: str) -> bool:
        value = self.values.get(name)
        return value is not None and value.quant is not None

    def get(
        self,
        name: str,
        layout: Layout | None = None,
        dtype: str | None = None,
        quant: QuantParams | None = None,
    ) -> Value:
        """The value of ONNX tensor name, converted to the asked dtype/params and layout."""
        value = self.values[name]
        if dtype is not None:
            value = self._to_dtype(name, value, dtype, quant)
        if layout is not None and layout != value.layout:
            value = self._to_layout(name, value, layout)
        return value

    def preferred_layout(self, name: str) -> Layout:
        """The layout a layout-agnostic op should use: the value's own; NHWC for a 4-D graph
        input, so the one TRANSPOSE sits at the edge where convolutions would need it anyway."""
        value = self.values[name]
        if value.layout.cols is not None:
            return PLAIN
        if value.layout.is_plain and len(value.shape) == 4 and name in self.graph.inputs:
            return Layout(NHWC)
        return value.layout

    def _to_dtype(self, name: str, value: Value, dtype: str, quant: QuantParams | None) -> Value:
        if dtype == "float32" and value.quant is None:
            return value  # float32, or an int/bool tensor that float ops read as it is
        if dtype == "int8":
            quant = quant or value.quant or self.graph.act_quant[name]
            if value.dtype == "int8" and value.quant.same_as(quant):
                return value
        key = (name, value.layout, dtype, quant)
        if key not in self.converted:
            out = self.new_value(f"{name}/{dtype}", value.shape, value.layout, dtype, quant)
            op = "DEQUANTIZE" if dtype == "float32" else "QUANTIZE"
            self.emit(op, [value.tensor], [out])
            self.converted[key] = out
        return self.converted[key]

    def _to_layout(self, name: str, value: Value, layout: Layout) -> Value:
        key = (name, layout, value.dtype, value.quant)
        if key not in self.converted:
            rank = len(value.shape)
            perm = transpose_perm(value.layout, layout, rank)
            out = self.new_value(
                f"{name}/transposed", value.shape, layout, value.dtype, value.quant
            )
            self.converted[key] = out
            if _moves_only_unit_axes(value, perm):  # same element order: a RESHAPE
                dims = [int(d) for d in layout.shape(value.shape)]
                options = self.options_of("ReshapeOptions", newShape=dims)
                self.emit(
                    "RESHAPE",
                    [value.tensor, self.shape_const(f"{name}/dims", dims)],
                    [out],
                    options,
                )
                return out
            self.emit("TRANSPOSE", [value.tensor, self.shape_const(f"{name}/perm", perm)], [out])
            edge = name in self.graph.inputs or name in self.graph_outputs
            self.transposes["edge" if edge else "inner"] += 1
        return self.converted[key]

    def emit(
        self,
        op: str,
        inputs: list[int],
        outputs: list[Value],
        options: tuple[int, object] | None = None,
        version: int | None = None,
    ) -> None:
        """Append a TFLite operator with the version its input/output types call for."""
        if version is None:
            types = [self.builder.tensors[i].type if i >= 0 else None for i in inputs]
            version = legalize.op_version(op, types, [o.dtype for o in outputs])
        self.builder.add_op(op, inputs, [o.tensor for o in outputs], options, version)

    def fuse_activation(self, node: Node) -> tuple[int, str]:
        """Fold a lone following Relu/Clip into the op: (fused code, ONNX name of the result)."""
        name = node.outputs[0]
        readers = self.consumers.get(name, [])
        if len(readers) != 1 or name in self.graph_outputs:
            return legalize.NO_ACTIVATION, name
        code = legalize.fusable_activation(readers[0], self.graph)
        if code is None:
            return legalize.NO_ACTIVATION, name
        self.fused.add(readers[0].name)
        return code, readers[0].outputs[0]

    def options_of(self, name: str, **fields: object) -> tuple[int, object]:
        """Builtin options for op-options table `name` (e.g. "Conv2DOptions")."""
        return make_options(name, **fields)


def _moves_only_unit_axes(value: Value, perm: tuple[int, ...]) -> bool:
    """True when TRANSPOSE(value, perm) keeps the element order (only size-1 axes move) and
    every dim is static, so a RESHAPE does the same."""
    dims = value.layout.shape(value.shape)
    if any(d is None for d in dims):
        return False
    moving = [p for p in perm if dims[p] != 1]
    return moving == sorted(moving)


def _real_range(quant: QuantParams) -> tuple[float, float]:
    return (-128 - quant.zero_point[0]) * quant.scale[0], (127 - quant.zero_point[0]) * quant.scale[
        0
    ]
