"""The precision a float (fallback) int8 block runs in: fp32, or fp16 where the target has it.

An fp16 block is written into the Q/DQ ONNX as fp16 weights read through a Cast to float:
onnxruntime folds the Cast (fp32 compute on fp16-rounded weights), the tflite lowering stores
them as fp16 + DEQUANTIZE (the TFLite fp16 form), and TensorRT runs unquantized layers in fp16
with its fp16_fallback option (on by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from targets.base import Target

# Runtimes whose fp16 is no faster than fp32 on the CPU they run on (onnxruntime's CPU kernels
# cast fp16 back to fp32), so a fallback block stays fp32 there.
FP32_FALLBACK_RUNTIMES = ("onnxruntime",)


def fallback_precision(target: Target) -> str:
    """fp16 on targets that declare fp16 and run it natively, else fp32."""
    caps = target.capabilities
    native = caps.runtime not in FP32_FALLBACK_RUNTIMES
    return "fp16" if "fp16" in caps.precisions and native else "fp32"


def mark_fp16(path: Path, nodes: tuple[str, ...]) -> list[str]:
    """Store the float weights of `nodes` in fp16 (read through a Cast); the nodes changed."""
    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    wanted, changed, casts = set(nodes), [], []
    for node in graph.node:
        if node.name not in wanted:
            continue
        for name in node.input:
            init = inits.get(name)
            if init is None or init.data_type != onnx.TensorProto.FLOAT or not init.dims:
                continue
            half = numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), f"{name}/fp16"
            )
            graph.initializer.remove(init)
            graph.initializer.append(half)
            casts.append(helper.make_node("Cast", [half.name], [name], f"{name}/cast", to=1))
            del inits[name]
        if any(cast.output[0] in node.input for cast in casts):
            changed.append(node.name)
    for cast in reversed(casts):
        graph.node.insert(0, cast)
    tmp = path.with_suffix(".fp16.partial")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return changed
