"""What the TensorRT target declares: precisions, its explicit-quantization scheme, its options."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.errors import UsageError
from targets.base import ArtifactLayout, QuantScheme, TargetCapabilities, TargetOptions

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
    notes=(
        "Engines are built where TensorRT and a CUDA GPU exist; elsewhere the Q/DQ ONNX and "
        "build_engine.py are written and verified in onnxruntime as a proxy.",
    ),
)


def _opt(default: object, help: str) -> object:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TensorRTOptions(TargetOptions):
    """Engine-build settings; the same values are written into build_engine.py."""

    workspace_mb: int = _opt(1024, "Builder workspace memory pool limit in MiB.")
    batch: tuple[int, ...] = _opt(
        (1, 1, 32),
        "Dynamic-batch optimization profile MIN,OPT,MAX (ignored for a fixed batch).",
    )
    timing_cache: str = _opt(
        "",
        "Timing-cache file to load and update, so rebuilds reuse kernel timings ('' = none).",
    )
    fp16_fallback: bool = _opt(
        True, "With --int8, let unquantized layers run in fp16 (TensorRT's usual int8 setup)."
    )
    build_check: bool = _opt(
        True, "Without a GPU, parse and build the ONNX with TensorRT-RTX on CPU as a check."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        low, opt, high = (list(self.batch) + [0, 0, 0])[:3]
        if len(self.batch) != 3 or not 1 <= low <= opt <= high:
            raise UsageError(
                f"tensorrt option batch={','.join(map(str, self.batch))} must be three "
                "numbers MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, e.g. -O batch=1,8,32."
            )
        if self.workspace_mb < 1:
            raise UsageError("tensorrt option workspace_mb must be at least 1 (MiB).")

    def settings(self, precision: str) -> dict:
        """The builder settings for a precision, as build_engine.py takes them."""
        return {
            "fp16": precision == "fp16" or (precision == "int8" and self.fp16_fallback),
            "int8": precision == "int8",
            "workspace_mb": self.workspace_mb,
            "batch": list(self.batch),
            "timing_cache": self.timing_cache,
        }
