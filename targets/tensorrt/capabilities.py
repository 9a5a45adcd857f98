"""What the TensorRT target declares: precisions, artifact and its explicit-quantization scheme."""

from __future__ import annotations

from targets.base import ArtifactLayout, QuantScheme, TargetCapabilities

# Ops TensorRT runs in int8 when their inputs carry Q/DQ. Everything else (Relu, pooling,
# Softmax, LayerNorm) stays unquantized and TensorRT propagates the scales through it.
QUANTIZED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add")

# Explicit quantization as TensorRT's placement guide asks: symmetric int8 activations (zero
# point 0), per-channel symmetric int8 weights on the output-channel axis, Q/DQ on op inputs
# only, residual Adds quantized on the skip input only (the Conv feeding the other input
# absorbs the Add), bias Adds left float and no int32 bias (onnxruntime's default bias
# quantization is rejected by TensorRT's ONNX parser).
TENSORRT_SCHEME = QuantScheme(
    activation_type="int8",
    weight_type="int8",
    per_channel=True,
    activation_symmetric=True,
    weight_symmetric=True,
    quantize_bias=False,
    op_types=QUANTIZED_OPS,
    quantize_outputs=False,
    residual_ops=("Add",),
    description=(
        "TensorRT explicit Q/DQ: symmetric int8 activations, per-channel symmetric int8 "
        "weights, Q/DQ on Conv/Gemm/MatMul inputs and residual-Add skip inputs, float bias"
    ),
)

CAPABILITIES = TargetCapabilities(
    precisions=("fp32", "fp16", "int8"),
    quant_scheme=TENSORRT_SCHEME,
    runtime="tensorrt",
    artifact=ArtifactLayout(".engine", also_opens=(".plan",)),
    runtime_package="tensorrt",
    int8_arithmetic="exact: int32 accumulation (the CPU proxy runs the Q/DQ graph exactly too)",
    notes=(
        "Engines are built where TensorRT and a CUDA GPU exist; elsewhere the Q/DQ ONNX and "
        "build_engine.py are written and verified in onnxruntime as a proxy.",
    ),
)
