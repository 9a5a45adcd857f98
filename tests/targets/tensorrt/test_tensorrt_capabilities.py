"""targets/tensorrt/capabilities.py: what the TensorRT target declares (scheme, precisions,
artifact suffix, availability) and the precisions it refuses before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressor.pipeline.run import validate_recipe
from compressor.recipe import Recipe
from foundation.errors import UsageError
from targets.registry import get_target, target_for_artifact
from targets.tensorrt.capabilities import TENSORRT_SCHEME
from targets.tensorrt.toolchain import find_toolchain


def test_scheme_is_symmetric_int8_with_float_bias_and_input_only_placement():
    s = TENSORRT_SCHEME
    assert (s.activation_type, s.weight_type) == ("int8", "int8")
    assert s.activation_symmetric and s.weight_symmetric and s.per_channel
    assert not s.quantize_bias and not s.quantize_outputs
    assert {"Conv", "Gemm", "MatMul", "Add"} <= set(s.op_types)
    assert s.residual_ops == ("Add",)


def test_registry_finds_tensorrt_by_name_and_engine_suffix():
    target = get_target("tensorrt")
    assert target.capabilities.precisions == ("fp32", "fp16", "int8")
    assert target.capabilities.artifact_suffix == ".engine"
    assert target_for_artifact(Path("model.engine")) is target


def test_availability_says_proxy_mode_without_gpu():
    ok, why = get_target("tensorrt").availability()
    assert ok
    if find_toolchain().can_build:
        assert "builds engines" in why
    else:
        assert "proxy mode" in why and "build_engine.py" in why


def test_dynamic_precision_is_rejected_before_any_work(tmp_path):
    recipe = Recipe(model="m.pt2", target="tensorrt", precision="dynamic", output=str(tmp_path))
    with pytest.raises(UsageError, match="supports precisions"):
        validate_recipe(recipe)
