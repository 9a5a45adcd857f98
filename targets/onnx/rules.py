"""What the ONNX Runtime CPU target declares: precisions and its int8 scheme."""

from targets.base import QuantScheme, TargetCapabilities

# uint8 activations with int8 weights (U8S8) ran a real MobileNetV2 1.86x faster than fp32 on
# this x86 CPU (VNNI) where int8 activations (S8S8) gave only 1.1x: see shared/notes/stack.md.
ORT_CPU_SCHEME = QuantScheme(
    activation_type="uint8",
    weight_type="int8",
    per_channel=True,
    activation_symmetric=False,
    weight_symmetric=True,
    quantize_bias=True,
    description="Q/DQ U8S8: asymmetric uint8 activations, per-channel symmetric int8 weights",
)

CAPABILITIES = TargetCapabilities(
    precisions=("fp32", "fp16", "int8", "dynamic"),
    quant_scheme=ORT_CPU_SCHEME,
    runtime="onnxruntime",
    artifact_suffix=".onnx",
    dynamic_batch=True,
)
