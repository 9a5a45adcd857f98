"""What the ONNX Runtime CPU target declares: precisions, artifact and its int8 scheme per CPU
profile (the same Q/DQ file computes differently on CPUs with and without VNNI)."""

import dataclasses
import functools

from targets.arithmetic import PROFILES, CpuProfile, Int8Arithmetic
from targets.base import ArtifactLayout, QuantScheme, TargetCapabilities
from targets.onnx.options import OnnxOptions

# uint8 activations with int8 weights (U8S8) ran a real MobileNetV2 1.86x faster than fp32 on
# this x86 CPU (VNNI) where int8 activations (S8S8) gave only 1.1x: see shared/notes/stack.md.
U8S8_SCHEME = QuantScheme(
    activation_type="uint8",
    weight_type="int8",
    per_channel=True,
    activation_symmetric=False,
    weight_symmetric=True,
    quantize_bias=True,
    # onnxruntime's CPU provider has no int8 LayerNorm or GELU kernel: Q/DQ there only adds
    # conversions and rounding, so these ops run in float between quantized neighbours.
    float_ops=("LayerNormalization", "Gelu", "Erf"),
    description="Q/DQ U8S8: asymmetric uint8 activations, per-channel symmetric int8 weights",
)
S8S8_DESCRIPTION = "Q/DQ S8S8: asymmetric int8 activations, per-channel symmetric int8 weights"


def demanding_arithmetic(profile: CpuProfile) -> Int8Arithmetic:
    """The arithmetic of the profile that loses most (a saturating one when there is one):
    passes and the tuner measure in it alone, the verdict in all of the profile's."""
    return next((a for a in profile.arithmetics if a.pair_saturation), profile.arithmetics[0])


@functools.cache
def profile_scheme(activation_type: str, profile_name: str) -> QuantScheme:
    """The best scheme for a CPU profile: saturation-safe weights where some CPU of it sums
    u8×s8 pairs in int16 (portable, x86-avx2), full 8-bit weights elsewhere."""
    profile = PROFILES[profile_name]
    scheme = U8S8_SCHEME
    if activation_type == "int8":
        scheme = dataclasses.replace(scheme, activation_type="int8", description=S8S8_DESCRIPTION)
    safe = ", saturation-safe weights" if profile.pair_saturation else ""
    return dataclasses.replace(
        scheme,
        saturation_safe_weights=profile.pair_saturation,
        arithmetic=demanding_arithmetic(profile).name,
        description=f"{scheme.description}; CPU profile {profile.name}{safe}",
    )


# The default (-O cpu=portable): holds on every CPU onnxruntime runs on.
ORT_CPU_SCHEME = profile_scheme("uint8", "portable")

CAPABILITIES = TargetCapabilities(
    precisions=("fp32", "fp16", "int8", "dynamic"),
    quant_scheme=ORT_CPU_SCHEME,
    runtime="onnxruntime",
    artifact=ArtifactLayout(".onnx"),
    runtime_package="onnxruntime",
    dynamic_dims=True,
    runs_qdq_graph=True,
    notes=(
        "int8 is made for a CPU profile (-O cpu=portable|host|x86-avx2|x86-vnni|arm64) and "
        "verified in each of its arithmetics: see docs/cpu-profiles.md.",
    ),
)


def scheme_for(options: OnnxOptions | None) -> QuantScheme:
    """The ONNX Runtime scheme for the options' activation type and CPU profile."""
    options = options or OnnxOptions()
    return profile_scheme(options.activation_type, options.profile.name)
