"""What the OpenVINO target declares: precisions, the IR folder artifact and its int8 scheme."""

from __future__ import annotations

from targets.arithmetic import AVX2_PAIRS
from targets.base import ArtifactLayout, QuantScheme, TargetCapabilities

# OpenVINO reads onnxruntime's Q/DQ graph as FakeQuantize ops and its low-precision passes run
# every Conv/MatMul between uint8 activations and int8 weights in u8 (oneDNN), as the ONNX
# Runtime target's U8S8 scheme lays it out. LayerNorm and GELU have no int8 kernel there.
#
# CPU arithmetic (measured, see README.md "int8 arithmetic"): on x86 with VNNI (and AMX) the
# u8×s8 products are summed exactly in int32. On AVX2-only x86 (no VNNI; run under
# `qemu-x86_64 -cpu Haswell`), oneDNN's Convolution (1×1 and 3×3) and FullyConnected kernels
# add each pair of products of ADJACENT INPUT CHANNELS in a saturating int16 (VPMADDUBSW):
# all-127 weights against u8 255 inputs lost half the output (40.2 of 81.3). Depthwise
# convolutions are exact (no pairs). That is issue 19's `x86-avx2-pairs-int16` arithmetic,
# the same as onnxruntime's, so this target takes issue 19's saturation-safe weights, and
# passes measure its int8 in that arithmetic (emulated where the host has VNNI).
AVX2_PAIR_SATURATION = True

OPENVINO_SCHEME = QuantScheme(
    activation_type="uint8",
    weight_type="int8",
    per_channel=True,
    activation_symmetric=False,
    weight_symmetric=True,
    quantize_bias=True,
    float_ops=("LayerNormalization", "Gelu", "Erf"),
    saturation_safe_weights=AVX2_PAIR_SATURATION,
    arithmetic=AVX2_PAIRS.name,
    description="Q/DQ U8S8 read by OpenVINO: asymmetric uint8 activations, per-channel "
    "symmetric int8 weights (u8 oneDNN kernels)",
)

CAPABILITIES = TargetCapabilities(
    precisions=("fp32", "fp16", "int8"),
    quant_scheme=OPENVINO_SCHEME,
    runtime="openvino",
    artifact=ArtifactLayout(".openvino", folder=True),
    runtime_package="openvino",
    lowers_from_fp32=("fp16",),
    dynamic_dims=True,
    notes=(
        "IR folder model.openvino/ (model.xml + model.bin); fp16 stores compressed fp16 "
        "weights; runs on OpenVINO's CPU plugin in f32 arithmetic.",
    ),
)
