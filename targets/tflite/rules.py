"""What the TFLite target declares and the op-lowering table (ONNX op_type → rule)."""

from __future__ import annotations

from targets.base import ArtifactLayout, QuantScheme, TargetCapabilities
from targets.tflite import (
    conv,
    deconv,
    dense,
    elementwise,
    index_ops,
    math_ops,
    normalize,
    recurrent,
    shape_ops,
)
from targets.tflite.options import TfliteOptions

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
    notes=(
        "fp16 and dynamic-range int8 weights are made inside the lowering from the fp32 graph.",
    ),
)

# Index arithmetic on the dynamic batch that folds away once the batch is fixed.
SHAPE_ARITHMETIC = {
    "Shape",
    "Range",
    "Gather",
    "Cast",
    "ConstantOfShape",
    "Expand",
    "Equal",
    "Where",
    "Size",
}


__all__ = ["CAPABILITIES", "RULES", "SHAPE_ARITHMETIC", "TFLITE_SCHEME", "TfliteOptions"]

RULES = {
    "Conv": conv.lower_conv,
    "ConvTranspose": deconv.lower_conv_transpose,
    "MaxPool": conv.lower_pool,
    "AveragePool": conv.lower_pool,
    "GlobalAveragePool": conv.lower_global_pool,
    "GlobalMaxPool": conv.lower_global_pool,
    "Gemm": dense.lower_gemm,
    "MatMul": dense.lower_matmul,
    "Add": elementwise.lower_binary,
    "Sub": elementwise.lower_binary,
    "Mul": elementwise.lower_binary,
    "Div": elementwise.lower_binary,
    "Relu": elementwise.lower_unary,
    "Sigmoid": elementwise.lower_unary,
    "Tanh": elementwise.lower_unary,
    "HardSwish": elementwise.lower_unary,
    "LeakyRelu": elementwise.lower_unary,
    "Clip": elementwise.lower_clip,
    "PRelu": elementwise.lower_prelu,
    "HardSigmoid": elementwise.lower_hard_sigmoid,
    "Softmax": elementwise.lower_softmax,
    "Identity": elementwise.lower_identity,
    "Dropout": elementwise.lower_identity,
    "Requantize": elementwise.lower_requantize,
    "Reshape": shape_ops.lower_reshape,
    "Flatten": shape_ops.lower_reshape,
    "Squeeze": shape_ops.lower_squeeze,
    "Unsqueeze": shape_ops.lower_unsqueeze,
    "Transpose": shape_ops.lower_transpose,
    "Concat": shape_ops.lower_concat,
    "Split": shape_ops.lower_split,
    "Slice": shape_ops.lower_slice,
    "Pad": shape_ops.lower_pad,
    "ReduceMean": shape_ops.lower_reduce_mean,
    "ReduceMax": shape_ops.lower_reduce_mean,
    "Resize": shape_ops.lower_resize,
    "Gather": index_ops.lower_gather,
    "GatherND": index_ops.lower_gather_nd,
    "ReduceSum": index_ops.lower_reduce,
    "ReduceMin": index_ops.lower_reduce,
    "ReduceProd": index_ops.lower_reduce,
    "ReduceL2": index_ops.lower_reduce,
    "ReduceSumSquare": index_ops.lower_reduce,
    "ArgMax": index_ops.lower_arg_extreme,
    "ArgMin": index_ops.lower_arg_extreme,
    "TopK": index_ops.lower_topk,
    "CumSum": index_ops.lower_cumsum,
    "Tile": index_ops.lower_tile,
    "Expand": index_ops.lower_expand,
    "DepthToSpace": index_ops.lower_depth_space,
    "SpaceToDepth": index_ops.lower_depth_space,
    "LogSoftmax": elementwise.lower_softmax,
    "LayerNormalization": normalize.lower_layer_norm,
    "InstanceNormalization": normalize.lower_instance_norm,
    "BatchNormalization": normalize.lower_batch_norm,
    "LRN": normalize.lower_lrn,
    **dict.fromkeys(math_ops.UNARY, math_ops.lower_unary_math),
    **dict.fromkeys(math_ops.BINARY, math_ops.lower_binary_math),
    "Reciprocal": math_ops.lower_reciprocal,
    "Where": math_ops.lower_where,
    "IsNaN": math_ops.lower_is_nan,
    "Cast": math_ops.lower_cast,
    "Erf": math_ops.lower_erf,
    "Selu": math_ops.lower_selu,
    "Softplus": math_ops.lower_softplus,
    "Softsign": math_ops.lower_softsign,
    "Mish": math_ops.lower_mish,
    "LSTM": recurrent.lower_lstm,
    "GRU": recurrent.lower_gru,
}
