"""What the TFLite target declares: precisions, artifact and its int8 scheme."""

from __future__ import annotations

from targets.base import ArtifactLayout, QuantScheme, TargetCapabilities

TFLITE_SCHEME = QuantScheme(
    activation_type="int8",
    weight_type="int8",
    per_channel=True,
    activation_symmetric=False,
    weight_symmetric=True,
    quantize_bias=True,
    description="TFLite int8: asymmetric int8 activations, per-channel symmetric int8 weights, int32 bias",
)

CAPABILITIES = TargetCapabilities(
    precisions=("fp32", "fp16", "int8", "dynamic"),
    quant_scheme=TFLITE_SCHEME,
    runtime="litert",
    artifact=ArtifactLayout(".tflite"),
    runtime_package="ai-edge-litert",
    lowers_from_fp32=("fp16", "dynamic"),
    int8_arithmetic="exact: int32 accumulation (LiteRT's XNNPACK kernels, on every CPU)",
    notes=(
        "fp16 and dynamic-range int8 weights are made inside the lowering from the fp32 graph.",
    ),
)
