"""TensorFlow-SAME zero pads before convs (EfficientNet-Lite's ZeroPad2d, asymmetric on stride
2). The ONNX export folds each pad into its Conv's `pads`, so no ONNX tensor has the padded
shape: the pad's output takes its input's range, and every conv stays int8. Before, the padded
convs fell to float and XNNPACK refused the .pte (its pad pass quantized the float depthwise
conv's input: "Weight and Input should both be quantized")."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from benchmarks.efficientnet_lite import ConvBn, MBConv
from benchmarks.int8_auto import Net, export
from calibration.dataset import Dataset
from compressor.passes.quantize import quantize_int8_static
from targets.arithmetic import exact_session
from targets.base import TensorSpec, TorchSource
from targets.executorch.capabilities import XNNPACK_SCHEME
from targets.registry import get_target
from tests.targets.executorch.conftest import output_step

SIZE = 16


def lite_blocks() -> nn.Module:
    """A stride-2 padded stem, a stride-2 3x3 and a stride-1 5x5 inverted residual, a head."""
    torch.manual_seed(0)
    body = nn.Sequential(
        ConvBn(3, 8, 3, 2, SIZE),
        MBConv(8, 16, 3, 2, 4, SIZE // 2),
        MBConv(16, 16, 5, 1, 4, SIZE // 4),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    for module in body.modules():  # BatchNorm statistics that are not the identity
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return Net(body).eval()


def test_zero_padded_convs_take_their_input_range_and_run_in_int8(tmp_path):
    model = lite_blocks()
    x = np.random.default_rng(0).standard_normal((48, 3, SIZE, SIZE)).astype(np.float32)
    spec = TensorSpec("x", ("batch", 3, SIZE, SIZE))
    fp32 = export(model, spec, tmp_path)
    assert not any(n.op_type == "Pad" for n in onnx.load(str(fp32)).graph.node)
    qdq = tmp_path / "int8.onnx"
    quantize_int8_static(fp32, qdq, Dataset({"x": x[:32]}), XNNPACK_SCHEME, "minmax", 8)
    target = get_target("executorch").bind_torch(TorchSource(model, (spec,), {"x": x[:1]}))
    artifact = target.lower(qdq, "int8", tmp_path / "pte")
    info = artifact.info
    assert info["float_in_placement"] == []
    assert info["onnx_quantized_not_in_xnnpack"] == []
    assert info["onnx_ranges_used"] == info["onnx_ranges_total"]
    assert info["not_delegated"] == 0
    assert "aten.constant_pad_nd" in info["delegated_ops"]
    runner = target.open_runner(artifact.path, 1, artifact.options)
    got = next(iter(runner.run({"x": x[32:]}).values()))
    want = exact_session(qdq).run(None, {"x": x[32:]})[0]
    assert np.abs(got - want).mean() <= output_step(onnx.load(str(qdq)), want)
