"""targets/tensorrt/options.py: -O settings parsed from CLI strings, checked, and the builder
flags they give per precision."""

from __future__ import annotations

import pytest

from foundation.errors import UsageError
from targets.registry import get_target
from targets.tensorrt.options import TensorRTOptions


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
