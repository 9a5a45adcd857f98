"""What an ONNX artifact's I/O looks like as a file: names, shapes, dtypes, Q/DQ parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from targets.base import TensorSpec
from targets.onnx.runner import OnnxRuntimeRunner


def describe_onnx_io(path: Path) -> dict:
    """I/O from an onnxruntime session; scale/zero point where an integer I/O meets a Q/DQ node."""
    runner = OnnxRuntimeRunner(path)
    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    quant = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            quant.setdefault(node.input[0], node.input[1:])
        elif node.op_type == "QuantizeLinear":
            quant.setdefault(node.output[0], node.input[1:])

    def params(spec: TensorSpec) -> dict | None:
        if np.issubdtype(np.dtype(spec.dtype), np.floating) or spec.name not in quant:
            return None
        names = list(quant[spec.name]) + [""]
        scale, zero = inits.get(names[0]), inits.get(names[1])
        return {
            "scale": None if scale is None else scale.tolist(),
            "zero_point": 0 if zero is None else zero.tolist(),
        }

    def specs(items: list[TensorSpec]) -> list[dict]:
        return [
            {"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "quantization": params(s)}
            for s in items
        ]

    return {"inputs": specs(runner.inputs), "outputs": specs(runner.outputs)}
