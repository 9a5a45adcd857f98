"""Contract test over every registered target: declared capabilities, lowering and runners."""

from __future__ import annotations

import numpy as np
import pytest

from compressor.errors import DataError, TargetUnavailable
from compressor.export import export_onnx
from compressor.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from targets.base import PRECISIONS
from targets.registry import describe_targets, get_target, target_names


@pytest.fixture(scope="module")
def fp32_onnx(example, tmp_path_factory):
    model = load_model(example["model"])
    tmp = tmp_path_factory.mktemp("contract")
    cleanup_onnx(export_onnx(model, model.inputs, tmp / "raw.onnx"), tmp / "fp32.onnx")
    return tmp / "fp32.onnx"


@pytest.mark.parametrize("name", target_names())
def test_target_declares_capabilities(name):
    try:
        target = get_target(name)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    caps = target.capabilities
    assert target.name == name
    assert caps.precisions and set(caps.precisions) <= set(PRECISIONS)
    assert caps.artifact_suffix.startswith(".")
    assert caps.quant_scheme.weight_type in ("int8", "uint8")


@pytest.mark.parametrize("name", target_names())
def test_target_lowers_fp32_and_its_runner_matches_onnxruntime(name, fp32_onnx, tmp_path):
    try:
        target = get_target(name)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    ok, why = target.availability()
    if not ok:
        pytest.skip(why)
    options = target.parse_options({})
    artifact = target.lower(fp32_onnx, "fp32", tmp_path, options)
    assert artifact.path.exists() and artifact.path.parent == tmp_path
    runner = target.open_runner(artifact.path, threads=1)
    x = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    name_in = runner.inputs[0].name
    got = next(iter(runner.run({name_in: x}).values()))
    from targets.onnx.runner import OnnxRuntimeRunner

    ref_runner = OnnxRuntimeRunner(fp32_onnx)
    want = next(iter(ref_runner.run({ref_runner.inputs[0].name: x}).values()))
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-4)
    with pytest.raises(DataError, match="expects"):
        runner.run({name_in: np.zeros((1, 1, 9, 9), np.float32)})


def test_describe_targets_lists_every_target_with_a_reason():
    rows = describe_targets()
    assert [r[0] for r in rows] == target_names()
    assert all(isinstance(r[2], str) and r[2] for r in rows)
