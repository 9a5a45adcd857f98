"""The five zoo models lowered to .pte in fp32 and int8 and run in ExecuTorch's runtime:
fp32 against torch (1e-4 of the output range), int8 against the exact Q/DQ reference
(onnxruntime, graph optimizations off: at most 1 output step of mean disagreement)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from targets.arithmetic import exact_session
from targets.registry import get_target
from tests.targets.executorch.conftest import output_step, prepare_zoo

# Each .pte lowering takes 10-40 s on 2 quiet cores: LeNet stays in the default run, the other
# four models run with `-m slow` (CI's fast suite keeps its 10-minute budget).
ZOO = ["lenet"] + [
    pytest.param(name, marks=pytest.mark.slow)
    for name in ("resnet", "mobilenet", "transformer", "lstm")
]


@pytest.fixture(scope="module", params=ZOO)
def zoo(request, tmp_path_factory):
    graphs = prepare_zoo(request.param, tmp_path_factory.mktemp(request.param))
    target = get_target("executorch").bind_torch(graphs["source"])
    for precision in ("fp32", "int8"):
        onnx_path = graphs["folder"] / f"{precision}.onnx"
        artifact = target.lower(onnx_path, precision, graphs["folder"] / f"pte-{precision}")
        runner = target.open_runner(artifact.path, 1, artifact.options)
        graphs[precision] = (artifact, next(iter(runner.run({"x": graphs["x"]}).values())))
    return graphs


def test_fp32_pte_matches_torch_within_1e4_of_the_output_range(zoo):
    artifact, got = zoo["fp32"]
    with torch.no_grad():
        want = zoo["model"](torch.from_numpy(zoo["x"])).numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.ptp(want)
    assert artifact.info["xnnpack_partitions"] >= 1
    assert any(op in artifact.info["delegated_ops"] for op in ("aten.convolution", "aten.linear"))


def test_int8_pte_is_within_one_step_of_the_exact_qdq_reference(zoo):
    artifact, got = zoo["int8"]
    qdq = zoo["folder"] / "int8.onnx"
    session = exact_session(qdq)
    want = session.run(None, {"x": zoo["x"]})[0]
    step = output_step(onnx.load(str(qdq)), want)
    assert np.abs(got - want).mean() <= step
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95
    info = artifact.info
    assert info["weights_from_onnx"] >= 1 and info["onnx_ranges_used"] >= 1
    assert "quantized_decomposed.quantize_per_tensor" in info["delegated_ops"]
