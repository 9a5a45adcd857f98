"""What the ExecuTorch target declares: precisions, the .pte artifact and its int8 scheme."""

from __future__ import annotations

from targets.base import ArtifactLayout, QuantScheme, TargetCapabilities

# XNNPACK's quantized kernels (qs8): asymmetric int8 activations, per-channel symmetric int8
# weights in [-127, 127], int32 bias. The Q/DQ graph is calibrated in this scheme, so the
# ranges carried into PT2E are the very ones onnxruntime's reference runs with.
XNNPACK_SCHEME = QuantScheme(
    activation_type="int8",
    weight_type="int8",
    per_channel=True,
    activation_symmetric=False,
    weight_symmetric=True,
    quantize_bias=True,
    description="XNNPACK qs8: asymmetric int8 activations, per-channel symmetric int8 weights",
)

INSTALL = "pip install -e '.[executorch]' (executorch==1.5.1 with torch 2.13)"

CAPABILITIES = TargetCapabilities(
    precisions=("fp32", "fp16", "int8"),
    quant_scheme=XNNPACK_SCHEME,
    runtime="executorch",
    artifact=ArtifactLayout(".pte"),
    runtime_package="executorch",
    lowers_from_fp32=("fp16",),
    needs_torch_module=True,
    int8_arithmetic="exact: int32 accumulation (XNNPACK's qs8 kernels, on every CPU)",
    notes=(
        "Lowers from the torch model (torch.export → XNNPACK delegate); ONNX input is refused.",
        "int8 reuses the Q/DQ ONNX graph's ranges and placement through PT2E (no second "
        "calibration).",
        f"Needs the executorch extra: {INSTALL}.",
    ),
)
