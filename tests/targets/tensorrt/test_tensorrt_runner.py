"""Runners for TensorRT artifacts: the onnxruntime proxy on CPU, the engine runner on a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.zoo import zoo_data
from compressor.judging.evaluate import evaluate, output_fidelity
from compressor.judging.latency import measure_latency
from foundation.errors import TargetUnavailable
from targets.arithmetic import EXACT
from targets.onnx.runner import OnnxRuntimeRunner
from targets.registry import get_target
from targets.tensorrt.toolchain import find_toolchain

TOOLS = find_toolchain()
gpu = pytest.mark.skipif(not TOOLS.can_build, reason=f"no engine here: {TOOLS.why_no_engine()}")


def test_onnx_artifact_opens_as_a_labelled_proxy(zoo_int8):
    out, _ = zoo_int8("lenet")
    runner = get_target("tensorrt").open_runner(out / "model.onnx")
    assert isinstance(runner, OnnxRuntimeRunner)
    assert runner.proxy_for == "tensorrt" and runner.runtime == "onnxruntime"
    assert runner.arithmetic == EXACT.name  # TensorRT sums int8 in int32, not as this CPU may
    x = zoo_data("lenet")["eval"].inputs["x"][:5]
    assert next(iter(runner.run({"x": x}).values())).shape == (5, 10)


@pytest.mark.skipif(TOOLS.can_build, reason="TensorRT and a GPU are here")
def test_engine_runner_says_what_is_missing(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not opened")
    with pytest.raises(TargetUnavailable, match="CUDA GPU") as err:
        get_target("tensorrt").open_runner(engine)
    assert "--target onnx" in str(err.value)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("name", ["lenet", "resnet", "mobilenet", "transformer"])
def test_engine_matches_the_qdq_onnx_and_fp32(zoo_int8, name):
    """The built int8 engine against the same Q/DQ graph in onnxruntime, past the profile MAX."""
    out, report = zoo_int8(name)
    assert report["artifact"] == "model.engine" and report["compressed"]["runtime"] == "tensorrt"
    assert abs(report["compressed"]["accuracy"] - report["fp32_reference"]["accuracy"]) <= 0.01
    data = zoo_data(name)["eval"].take(100)  # more than the default profile MAX of 32
    engine = get_target("tensorrt").open_runner(out / "model.engine")
    assert engine.runtime == "tensorrt"
    qdq = OnnxRuntimeRunner(out / "model.onnx", arithmetic=EXACT.name)  # int32, as TensorRT
    got, want = engine.run(data.inputs), qdq.run(data.inputs)
    fidelity = output_fidelity(next(iter(want.values())), next(iter(got.values())))
    assert fidelity["cosine"] > 0.99 and fidelity["top1_agreement"] >= 0.97
    assert evaluate(engine, data).accuracy >= evaluate(qdq, data).accuracy - 0.02
    feed = {"x": data.inputs["x"][:1]}
    engine_ms, qdq_ms = measure_latency([engine, qdq], [feed, feed], 5, 20, 1)
    assert engine_ms.p50 > 0 and qdq_ms.p50 > 0
    print(f"{name}: engine p50 {engine_ms.p50:.3f} ms, onnxruntime Q/DQ p50 {qdq_ms.p50:.3f} ms")
    engine.close()
    np.testing.assert_equal(len(got), len(want))
