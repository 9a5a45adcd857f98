"""Zoo models prepared as the pipeline prepares them for --target executorch: a .pt2, its
cleaned fp32 ONNX and the Q/DQ ONNX calibrated in the target's scheme. Skipped, with the
install line, where ExecuTorch is not installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from benchmarks.zoo import build_model, export_program, zoo_data
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from targets.base import TorchSource
from targets.executorch.capabilities import INSTALL, XNNPACK_SCHEME

if importlib.util.find_spec("executorch") is None:
    pytest.skip(f"ExecuTorch is not installed: {INSTALL}", allow_module_level=True)


def prepare_zoo(name: str, folder) -> dict:
    """An untrained zoo model (the numbers compared do not depend on training) as .pt2, fp32
    ONNX and Q/DQ ONNX, with its torch source and evaluation inputs."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    torch.export.save(export_program(model, name), str(folder / "model.pt2"))
    loaded = load_model(folder / "model.pt2")
    cleanup_onnx(export_onnx(loaded, loaded.inputs, folder / "raw.onnx"), folder / "fp32.onnx")
    data = zoo_data(name)
    quantize_int8_static(
        folder / "fp32.onnx", folder / "int8.onnx", data["calib"].take(64), XNNPACK_SCHEME,
        "minmax", 16,
    )  # fmt: skip
    x = data["eval"].inputs["x"][:48]
    source = TorchSource(loaded.module, tuple(loaded.inputs), {"x": x[:1]})
    return {"model": model, "source": source, "x": x, "folder": folder}


def output_step(model: onnx.ModelProto, output: np.ndarray) -> float:
    """The scale of the Q/DQ pair on the graph's output (one int8 step), else range / 255."""
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out = model.graph.output[0].name
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] == out:
            return float(consts[node.input[1]])
    return float(np.ptp(output)) / 255
