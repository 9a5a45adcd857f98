"""Where each ONNX tensor lives in a lowered .tflite, and its values there, for `compress debug`.

The lowering keeps ONNX tensor names on the tensors it emits; what the file cannot say is how a
tensor is laid out (NHWC, flattened column order) or which ONNX node an op absorbed (a Relu
fused into CONV_2D). `tensor_places` records that while lowering; `trace_tensors` runs the file
in LiteRT's builtin kernels with every intermediate tensor preserved (a delegate such as
XNNPACK keeps its partition's tensors to itself) and returns each one dequantized, in the ONNX
layout.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from targets.tflite.emit import Lowering, Value

# Ops that only convert a value another op computed.
CONVERSIONS = ("QUANTIZE", "DEQUANTIZE")
# Data tensors worth comparing; int32/int64/bool values are shapes and indices.
TRACED_DTYPES = ("float32", "int8")


@dataclass(frozen=True)
class TensorPlace:
    """One ONNX tensor in the file: tensor index, layout, the op that makes it, what it fused."""

    tensor: int
    perm: tuple[int, ...] | None
    cols: tuple[int, ...] | None
    op_index: int | None
    op_name: str
    fused: str = ""
    # For a QUANTIZE/DEQUANTIZE: the op that computed its input (a float island's op).
    source: str = ""

    @property
    def where(self) -> str:
        """The making op in words, e.g. `op 2 CONV_2D+Relu`, or `input`."""
        if self.op_index is None:
            return "input"
        where = f"op {self.op_index} {self.op_name}" + (f"+{self.fused}" if self.fused else "")
        return f"{where} (of {self.source})" if self.source else where

    def to_onnx_layout(self, array: np.ndarray) -> np.ndarray:
        """Undo the layout the lowering gave this tensor (Layout.apply in reverse)."""
        if self.cols is not None and array.shape[-1] == len(self.cols):
            array = array[..., np.argsort(self.cols)]
        if self.perm is not None:
            array = array.transpose(np.argsort(self.perm))
        return array


def tensor_places(ctx: Lowering) -> dict[str, TensorPlace]:
    """{ONNX tensor name: its place} for every runtime value the lowering made, the int8 form
    where a float value was quantized for its readers, and the public outputs."""
    producers = {}
    for index, operator in enumerate(ctx.builder.operators):
        op_name = ctx.builder.op_names[index]
        source = producers.get(int(operator.inputs[0])) if op_name in CONVERSIONS else None
        origin = f"op {source[0]} {source[1]}" if source else ""
        for tensor in operator.outputs:
            producers[int(tensor)] = (index, op_name, origin)
    fused = {node.outputs[0]: node.op_type for node in ctx.graph.nodes if node.name in ctx.fused}
    quantized = {}
    for key, value in ctx.converted.items():
        if value.dtype == "int8":
            quantized.setdefault(key[0], value)
    places = {}
    for name, value in ctx.values.items():
        if value.dtype not in TRACED_DTYPES:
            continue
        if value.dtype == "float32" and name in quantized:
            value = quantized[name]
        places[name] = _place(value, producers, fused.get(name, ""))
    outputs = dict(ctx.graph.outputs)
    for public, index in ctx.builder.outputs:
        if public in places:
            continue
        if outputs.get(public) in places:  # the op computing it, not the DEQUANTIZE after it
            places[public] = places[outputs[public]]
            continue
        value = Value(index, ctx.public_layouts[index], "float32", None, ())
        places[public] = _place(value, producers, "")
    return places


def _place(value: Value, producers: dict, fused: str) -> TensorPlace:
    op_index, op_name, source = producers.get(value.tensor, (None, "input", ""))
    layout = value.layout
    return TensorPlace(value.tensor, layout.perm, layout.cols, op_index, op_name, fused, source)


def trace_tensors(
    path: Path, places: dict[str, TensorPlace], feeds: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, str]]:
    """{ONNX name: (float value in the ONNX layout, making op)} over all samples of feeds."""
    from targets.tflite.runner import LiteRtRunner

    with warnings.catch_warnings():  # LiteRT warns that preserving tensors is for debugging
        warnings.simplefilter("ignore")
        runner = LiteRtRunner(path, 1, "builtin", preserve_all_tensors=True)
    count = len(next(iter(feeds.values())))
    step = runner.fixed_batch or count
    parts: dict[str, list[np.ndarray]] = {name: [] for name in places}
    for start in range(0, count, step):
        runner.run({k: v[start : start + step] for k, v in feeds.items()})
        for name, place in places.items():
            # atleast_1d: a 0-d tensor then differs in shape from ONNX and is reported so.
            parts[name].append(np.atleast_1d(place.to_onnx_layout(runner.tensor(place.tensor))))
    runner.close()
    return {name: (np.concatenate(parts[name]), places[name].where) for name in places}
