"""targets/onnx/capabilities.py and options.py: what the ONNX Runtime target declares and takes."""

from __future__ import annotations

import pytest

from foundation.errors import UsageError
from targets.arithmetic import AVX2_PAIRS, EXACT, PROFILES, host_cpu
from targets.onnx import TARGET
from targets.onnx.capabilities import CAPABILITIES, ORT_CPU_SCHEME, scheme_for
from targets.onnx.options import OnnxOptions
from targets.registry import get_target


def test_the_default_scheme_is_u8s8_with_int32_bias_and_float_layer_norm():
    assert scheme_for(None) is ORT_CPU_SCHEME
    assert scheme_for(OnnxOptions()) is ORT_CPU_SCHEME
    assert (ORT_CPU_SCHEME.activation_type, ORT_CPU_SCHEME.weight_type) == ("uint8", "int8")
    assert ORT_CPU_SCHEME.per_channel and ORT_CPU_SCHEME.weight_symmetric
    assert not ORT_CPU_SCHEME.activation_symmetric and ORT_CPU_SCHEME.quantize_bias
    assert "LayerNormalization" in ORT_CPU_SCHEME.float_ops


def test_activation_type_int8_switches_only_the_activations_to_s8s8():
    signed = scheme_for(OnnxOptions(activation_type="int8"))
    assert signed.activation_type == "int8" and "S8S8" in signed.description
    same = ("weight_type", "per_channel", "activation_symmetric", "quantize_bias", "float_ops")
    assert all(getattr(signed, f) == getattr(ORT_CPU_SCHEME, f) for f in same)
    assert TARGET.quant_scheme(OnnxOptions(activation_type="int8")) == signed


def test_capabilities_declare_every_precision_and_a_single_onnx_file():
    assert get_target("onnx") is TARGET and TARGET.capabilities is CAPABILITIES
    assert set(CAPABILITIES.precisions) == {"fp32", "fp16", "int8", "dynamic"}
    assert CAPABILITIES.artifact.suffixes == (".onnx",) and not CAPABILITIES.artifact.folder
    assert CAPABILITIES.runtime_package == "onnxruntime" and CAPABILITIES.dynamic_dims
    assert CAPABILITIES.runs_qdq_graph  # the int8 artifact is the Q/DQ graph: no lowering check
    ok, why = TARGET.availability()
    assert ok and "CPUExecutionProvider" in why


def test_options_parse_from_cli_strings_and_reject_what_they_cannot_take():
    assert TARGET.parse_options({"activation_type": "int8"}) == OnnxOptions("int8")
    assert TARGET.check_request("int8", {}) == OnnxOptions()
    with pytest.raises(UsageError, match="uint8 or int8"):
        OnnxOptions(activation_type="int4")
    with pytest.raises(UsageError, match="uint8 or int8"):
        TARGET.parse_options({"activation_type": "int4"})
    with pytest.raises(UsageError, match="has no option 'workspace'"):
        TARGET.parse_options({"workspace": "1"})


@pytest.mark.parametrize(
    ("cpu", "safe", "arithmetic"),
    [
        ("portable", True, AVX2_PAIRS.name),
        ("x86-avx2", True, AVX2_PAIRS.name),
        ("x86-vnni", False, EXACT.name),
        ("arm64", False, EXACT.name),
    ],
)
def test_each_cpu_profile_gets_its_best_scheme(cpu, safe, arithmetic):
    scheme = TARGET.quant_scheme(TARGET.parse_options({"cpu": cpu}))
    assert scheme.saturation_safe_weights is safe and cpu in scheme.description
    assert scheme.arithmetic == arithmetic  # what passes and the tuner measure int8 in
    profile, arithmetics = TARGET.cpu_profile(OnnxOptions(cpu=cpu))
    assert profile == cpu and arithmetics == tuple(a.name for a in PROFILES[cpu].arithmetics)


def test_the_default_profile_is_portable_and_host_resolves_to_this_machine():
    assert OnnxOptions().cpu == "portable" and ORT_CPU_SCHEME.saturation_safe_weights
    assert TARGET.cpu_profile(OnnxOptions(cpu="host"))[0] == host_cpu().profile_name
    with pytest.raises(UsageError, match="cpu='avx9' is not a CPU profile; use one of portable"):
        TARGET.parse_options({"cpu": "avx9"})
