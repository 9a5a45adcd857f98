"""What the TensorRT target declares: scheme, precisions, options, registry lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressor.pipeline import validate_recipe
from compressor.recipe import Recipe
from foundation.errors import UsageError
from targets.registry import get_target, target_for_artifact
from targets.tensorrt.capabilities import TENSORRT_SCHEME
from targets.tensorrt.options import TensorRTOptions
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


def test_options_parse_from_cli_strings():
    options = get_target("tensorrt").parse_options(
        {"batch": "1,8,64", "workspace-mb": "512", "timing_cache": "/tmp/t.cache"}
    )
    assert options == TensorRTOptions(
        workspace_mb=512, batch=(1, 8, 64), timing_cache="/tmp/t.cache"
    )


@pytest.mark.parametrize("raw", [{"batch": "8,1,64"}, {"batch": "1,8"}, {"workspace_mb": "0"}])
def test_bad_options_are_usage_errors(raw):
    with pytest.raises(UsageError, match="tensorrt option"):
        get_target("tensorrt").parse_options(raw)


def test_unknown_option_lists_the_known_ones():
    with pytest.raises(UsageError, match="workspace_mb"):
        get_target("tensorrt").parse_options({"workspace": "1"})


@pytest.mark.parametrize(
    "precision, fallback, fp16, int8",
    [
        ("int8", True, True, True),
        ("int8", False, False, True),
        ("fp16", True, True, False),
        ("fp32", True, False, False),
    ],
)
def test_builder_flags_follow_precision(precision, fallback, fp16, int8):
    settings = TensorRTOptions(fp16_fallback=fallback).settings(precision)
    assert (settings["fp16"], settings["int8"]) == (fp16, int8)
    assert settings["batch"] == [1, 1, 32] and settings["workspace_mb"] == 1024


def test_dynamic_precision_is_rejected_before_any_work(tmp_path):
    recipe = Recipe(model="m.pt2", target="tensorrt", precision="dynamic", output=str(tmp_path))
    with pytest.raises(UsageError, match="supports precisions"):
        validate_recipe(recipe)
