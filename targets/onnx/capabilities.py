"""What the ONNX Runtime CPU target declares: precisions, artifact and its int8 scheme."""

import dataclasses

from targets.arithmetic import CpuProfile, Int8Arithmetic
from targets.base import ArtifactLayout, QuantScheme, TargetCapabilities
from targets.onnx.options import OnnxOptions

# uint8 activations with int8 weights (U8S8) ran a real MobileNetV2 1.86x faster than fp32 on
# this x86 CPU (VNNI) where int8 activations (S8S8) gave only 1.1x: see shared/notes/stack.md.
ORT_CPU_SCHEME = QuantScheme(
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

CAPABILITIES = TargetCapabilities(
    precisions=("fp32", "fp16", "int8", "dynamic"),
    quant_scheme=ORT_CPU_SCHEME,
    runtime="onnxruntime",
    artifact=ArtifactLayout(".onnx"),
    runtime_package="onnxruntime",
    dynamic_dims=True,
    runs_qdq_graph=True,
)


def scheme_for(options: OnnxOptions | None) -> QuantScheme:
    """The ONNX Runtime scheme for the options' activation type and CPU profile: profiles with
    a saturating arithmetic get saturation-safe weights, and passes measure in that arithmetic."""
    options = options or OnnxOptions()
    scheme = ORT_CPU_SCHEME
    if options.activation_type == "int8":
        scheme = dataclasses.replace(
            scheme,
            activation_type="int8",
            description="Q/DQ S8S8: asymmetric int8 activations, per-channel symmetric int8 "
            "weights",
        )
    profile = options.profile
    hardest = demanding_arithmetic(profile)
    return dataclasses.replace(
        scheme,
        saturation_safe_weights=profile.pair_saturation,
        arithmetic=hardest.name,
        description=f"{scheme.description}; CPU profile {profile.name}"
        + (", saturation-safe weights" if profile.pair_saturation else ""),
    )


def demanding_arithmetic(profile: CpuProfile) -> Int8Arithmetic:
    """The arithmetic of the profile that loses most (a saturating one when there is one):
    passes and the tuner measure in it alone, the verdict in all of the profile's."""
    return next((a for a in profile.arithmetics if a.pair_saturation), profile.arithmetics[0])
