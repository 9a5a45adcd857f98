"""Per-op tests for the ops of sequence, audio and detection models vs onnxruntime, both resolvers.

Same pattern as test_ops.py: a tiny ONNX graph per case, lowered to .tflite, run in LiteRT on
both resolvers, compared with onnxruntime (float: within 1e-4 of the output range; int8: a few
steps of the output's quantum against onnxruntime running the same Q/DQ graph).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from calibration.dataset import Dataset
from compressor.passes.quantize import quantize_int8_static
from targets.tflite import TARGET
from targets.tflite.capabilities import TFLITE_SCHEME
from targets.tflite.options import TfliteOptions
from tests.targets.tflite.test_ops import RESOLVERS, GraphBuilder, _inputs, _reference

RNG = np.random.default_rng(5)


def _i64(values) -> np.ndarray:
    return np.array(values, np.int64)


def case_layer_norm():
    g = GraphBuilder((1, 5, 16))
    y = g.op("MatMul", ["x", g.weight(16, 16)])
    y = g.op("LayerNormalization", [y, g.weight(16), g.weight(16)], axis=-1, epsilon=1e-5)
    return g.model(y), "RSQRT"


def case_gelu_erf():
    g = GraphBuilder((1, 6, 8))
    y = g.op("MatMul", ["x", g.weight(8, 8)])
    e = g.op("Erf", [g.op("Div", [y, g.const(np.float32(np.sqrt(2)))])])
    h = g.op("Mul", [g.const(np.float32(0.5)), g.op("Add", [e, g.const(np.float32(1))])])
    return g.model(g.op("Mul", [y, h])), "GELU"


def case_erf():
    g = GraphBuilder((1, 4, 5))
    return g.model(g.op("Erf", [g.op("Mul", ["x", g.const(np.float32(1.5))])])), "SIGN"


def case_batch_matmul_softmax_axis():
    g = GraphBuilder((1, 4, 6))
    a = g.op("MatMul", ["x", g.weight(6, 6)])
    scores = g.op("MatMul", [a, g.op("Transpose", ["x"], perm=[0, 2, 1])])
    probs = g.op("Softmax", [scores], axis=1)
    return g.model(g.op("MatMul", [probs, "x"])), "BATCH_MATMUL"


def case_unary_math():
    g = GraphBuilder((1, 4, 5))
    y = g.op("Add", [g.op("Abs", ["x"]), g.const(np.float32(0.5))])
    y = g.op("Log", [g.op("Sqrt", [y])])
    y = g.op("Exp", [g.op("Neg", [y])])
    y = g.op("Pow", [g.op("Pow", [y, g.const(np.float32(2))]), g.const(np.float32(1.5))])
    y = g.op("Reciprocal", [g.op("Add", [y, g.const(np.float32(1))])])
    trig = g.op("Add", [g.op("Sin", ["x"]), g.op("Cos", ["x"])])
    rounded = g.op("Add", [g.op("Floor", ["x"]), g.op("Ceil", ["x"])])
    rounded = g.op("Add", [rounded, g.op("Mul", [g.op("Sign", ["x"]), g.op("Round", ["x"])])])
    return g.model(y, trig, rounded), "POW"


def case_compare_where_cast():
    g = GraphBuilder((1, 8))
    hi = g.op("Greater", ["x", g.const(np.float32(0.2))])
    lo = g.op("LessOrEqual", ["x", g.const(np.float32(-0.5))])
    picked = g.op("Where", [g.op("Or", [hi, lo]), "x", g.op("Neg", ["x"])])
    picked = g.op("Min", [g.op("Max", [picked, g.const(np.float32(-0.3))]), "x"])
    both = g.op("And", [g.op("Not", [hi]), g.op("Equal", ["x", "x"])])
    flags = g.op("Cast", [both], to=TensorProto.FLOAT)
    nan = g.op("Cast", [g.op("IsNaN", ["x"])], to=TensorProto.FLOAT)
    ge = g.op("Cast", [g.op("GreaterOrEqual", ["x", g.const(np.float32(0))])], to=TensorProto.FLOAT)
    lt = g.op("Cast", [g.op("Less", ["x", g.const(np.float32(0))])], to=TensorProto.FLOAT)
    return g.model(picked, flags, nan, g.op("Add", [ge, lt])), "SELECT_V2"


def case_reductions():
    g = GraphBuilder((1, 4, 6, 6))
    y = g.conv("x", 4, 4, k=1)
    axes = g.const(_i64([2, 3]))
    total = g.op("ReduceSum", [y, axes], keepdims=0)
    low = g.op("ReduceMin", [y, g.const(_i64([1]))], keepdims=1)
    prod = g.op("ReduceProd", [g.op("Sigmoid", [y]), g.const(_i64([3]))], keepdims=0)
    l2 = g.op("ReduceL2", [y, axes], keepdims=0)
    square = g.op("ReduceSumSquare", [y, g.const(_i64([1]))], keepdims=0)
    return g.model(total, low, prod, l2, square), "SUM"


def case_cnn_activations():
    g = GraphBuilder((1, 4, 5, 5))
    y = g.op("Elu", [g.conv("x", 4, 4, k=1)], alpha=1.0)
    y = g.op("Elu", [g.conv(y, 4, 4, k=1)], alpha=0.5)
    y = g.op("Selu", [g.conv(y, 4, 4, k=1)])
    y = g.op("Softplus", [g.conv(y, 4, 4, k=1)])
    y = g.op("Softsign", [g.conv(y, 4, 4, k=1)])
    y = g.op("Mish", [g.conv(y, 4, 4, k=1)])
    y = g.op("HardSigmoid", [g.conv(y, 4, 4, k=1)], alpha=0.2, beta=0.5)
    return g.model(g.op("LogSoftmax", [g.conv(y, 4, 4, k=1)], axis=1)), "LOG_SOFTMAX"


def case_depth_to_space_crd():
    g = GraphBuilder((1, 4, 4, 4))
    y = g.op("DepthToSpace", [g.conv("x", 4, 8, k=1)], blocksize=2, mode="CRD")
    return g.model(g.conv(y, 2, 4, k=1)), "DEPTH_TO_SPACE"


def case_depth_space_dcr():
    g = GraphBuilder((1, 4, 4, 4))
    y = g.op("DepthToSpace", [g.conv("x", 4, 8, k=1)], blocksize=2, mode="DCR")
    return g.model(g.op("SpaceToDepth", [y], blocksize=2)), "SPACE_TO_DEPTH"


def case_norms():
    g = GraphBuilder((1, 4, 6, 6))
    y = g.op("LRN", [g.conv("x", 4, 6, k=1)], size=3, alpha=1e-2, beta=0.75, bias=1.0)
    y = g.op("InstanceNormalization", [y, g.weight(6), g.weight(6)], epsilon=1e-5)
    y = g.op("Relu", [g.conv(y, 6, 4, k=1)])
    mean, var = (
        g.weight(4, scale=0.1),
        g.const(np.abs(RNG.standard_normal(4)).astype(np.float32) + 0.5),
    )
    y = g.op("BatchNormalization", [y, g.weight(4), g.weight(4), mean, var], epsilon=1e-5)
    return g.model(y), "LOCAL_RESPONSE_NORMALIZATION"


def case_index_ops():
    g = GraphBuilder((1, 10))
    values, _ = g.op("TopK", ["x", g.const(_i64([3]))], outputs=2, axis=-1)
    arg = g.op("Cast", [g.op("ArgMax", ["x"], axis=1, keepdims=1)], to=TensorProto.FLOAT)
    low = g.op("Cast", [g.op("ArgMin", ["x"], axis=1, keepdims=0)], to=TensorProto.FLOAT)
    cum = g.op("CumSum", ["x", g.const(np.array(1, np.int64))], exclusive=1, reverse=1)
    tiled = g.op("Tile", [g.op("Relu", ["x"]), g.const(_i64([1, 2]))])
    return g.model(values, arg, low, cum, tiled), "TOPK_V2"


def case_conv_transpose_variants():
    g = GraphBuilder((1, 4, 4, 4))
    grouped = g.op(
        "ConvTranspose",
        ["x", g.weight(4, 3, 3, 3), g.weight(6, scale=0.1)],
        group=2,
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        dilations=[2, 2],
        output_padding=[1, 1],
    )
    depthwise = g.op("ConvTranspose", ["x", g.weight(4, 1, 2, 2)], group=4, strides=[2, 2])
    return g.model(grouped, depthwise), "TRANSPOSE_CONV"


def case_conv_transpose_grouped_no_bias():
    # onnxruntime's quantizer cannot quantize a grouped ConvTranspose's bias (per-channel
    # scales of C_out / group against C_out biases), so the int8 case has none.
    g = GraphBuilder((1, 4, 4, 4))
    y = g.op(
        "ConvTranspose", ["x", g.weight(4, 3, 3, 3)], group=2, strides=[2, 2], pads=[1, 1, 1, 1]
    )
    return g.model(y), "TRANSPOSE_CONV"


def case_gather_nd():
    g = GraphBuilder((1, 4, 5))
    y = g.op("Relu", ["x"])
    picked = g.op("GatherND", [y, g.const(_i64([[0, 1], [0, 3]]))])
    return g.model(g.op("Add", [picked, g.const(np.float32(1))])), "GATHER_ND"


def case_clip_runtime_bounds_expand():
    g = GraphBuilder((1, 3, 4))
    low = g.op("ReduceMin", ["x", g.const(_i64([2]))], keepdims=1)
    high = g.op("ReduceMean", ["x"], keepdims=0)
    y = g.op("Clip", [g.op("Mul", ["x", g.const(np.float32(2))]), "", high])
    y = g.op("Max", [y, low])
    wide = g.op("Expand", [g.op("Unsqueeze", [y, g.const(_i64([1]))]), g.const(_i64([1, 2, 3, 4]))])
    return g.model(wide), "MINIMUM"


def case_constant_first_operand():
    g = GraphBuilder((1, 6))
    y = g.op("Sub", [g.const(np.float32(1)), g.op("Sigmoid", ["x"])])
    return g.model(
        g.op("Div", [g.const(np.float32(2)), g.op("Add", [y, g.const(np.float32(1))])])
    ), "DIV"


def case_conv1d_reflect_pad():
    g = GraphBuilder((1, 3, 16))
    y = g.op("Pad", ["x", g.const(_i64([0, 0, 2, 0, 0, 2]))], mode="reflect")
    y = g.op("Conv", [y, g.weight(6, 3, 5), g.weight(6)], kernel_shape=[5], strides=[2])
    y = g.op("Relu", [y])
    y = g.op("Conv", [y, g.weight(6, 6, 3), g.weight(6)], kernel_shape=[3], pads=[1, 1])
    y = g.op("MaxPool", [y], kernel_shape=[2], strides=[2])
    return g.model(g.op("ReduceMean", [y, g.const(_i64([2]))], keepdims=0)), "MIRROR_PAD"


def _recurrent(op_type: str, direction: str, gates: int, peephole: bool = False, reset: int = 1):
    g = GraphBuilder((1, 7, 4))  # [batch, seq, features]
    dirs, hidden = 2 if direction == "bidirectional" else 1, 5
    inputs = [
        g.op("Transpose", ["x"], perm=[1, 0, 2]),
        g.weight(dirs, gates * hidden, 4),
        g.weight(dirs, gates * hidden, hidden),
        g.weight(dirs, 2 * gates * hidden, scale=0.2),
    ]
    if peephole:
        inputs += ["", "", "", g.weight(dirs, 3 * hidden, scale=0.2)]
    attrs = {"linear_before_reset": reset} if op_type == "GRU" else {}
    y, y_h = g.op(op_type, inputs, outputs=2, hidden_size=hidden, direction=direction, **attrs)
    return g.model(y, y_h)


def case_lstm_forward_peephole():
    return _recurrent("LSTM", "forward", 4, peephole=True), "UNIDIRECTIONAL_SEQUENCE_LSTM"


def case_lstm_bidirectional():
    return _recurrent("LSTM", "bidirectional", 4), "REVERSE_V2"


def case_gru_reverse():
    return _recurrent("GRU", "reverse", 3, reset=0), "TANH"


def case_gru_bidirectional():
    return _recurrent("GRU", "bidirectional", 3), "LOGISTIC"


CASES = {name[5:]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}
# Cases where a TRANSPOSE inside the graph is the lowering rather than a missed layout fold:
# softmax over a middle axis / a permuted tensor read by BATCH_MATMUL; the reflection pad that
# runs on the NCL input before the first (channels-last) 1-D conv.
INNER_TRANSPOSE = {"batch_matmul_softmax_axis", "conv1d_reflect_pad"}
# int8: quantized neighbours with the new ops as float islands, or int8 kernels (BATCH_MATMUL).
INT8_CASES = [
    "layer_norm",
    "gelu_erf",
    "batch_matmul_softmax_axis",
    "depth_space_dcr",
    "conv1d_reflect_pad",
    "conv_transpose_grouped_no_bias",
    "reductions",
    "norms",
    "cnn_activations",
    "depth_to_space_crd",
    "unary_math",
    "compare_where_cast",
    "erf",
    "gather_nd",
]


def _run(path, x, precision, resolver, tmp_path):
    artifact = TARGET.lower(path, precision, tmp_path, TfliteOptions())
    runner = TARGET.open_runner(artifact.path, 1, TfliteOptions(resolver=resolver))
    step = runner.fixed_batch or len(x)
    chunks = [runner.run({"x": x[i : i + step]}) for i in range(0, len(x), step)]
    outs = [np.concatenate([c[spec.name] for c in chunks]) for spec in runner.outputs]
    return artifact, outs


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_float_op_matches_onnxruntime(case, resolver, tmp_path):
    model, expected_op = CASES[case]()
    path = tmp_path / "case.onnx"
    onnx.save(model, path)
    x = _inputs(model, batch=3)
    artifact, got = _run(path, x, "fp32", resolver, tmp_path)
    assert artifact.info["op_counts"].get(expected_op, 0) >= 1, artifact.info["op_counts"]
    if case not in INNER_TRANSPOSE:
        assert artifact.info["transpose_inner"] == 0, artifact.info["op_counts"]
    recurrent = case.startswith(("lstm", "gru"))
    want = _reference(path, x)
    for index, (expect, have) in enumerate(zip(want, got, strict=True)):
        if recurrent:  # batch fixed to 1: LiteRT ran sample by sample, batch is axis 2 / 1
            have = np.concatenate(np.split(have, len(x), axis=0), axis=2 - index)
        assert have.shape == expect.shape
        scale = max(float(np.ptp(expect)), 1.0)
        np.testing.assert_allclose(have, expect, atol=1e-4 * scale, rtol=0)


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("case", INT8_CASES)
def test_int8_op_matches_onnxruntime_qdq(case, resolver, tmp_path):
    model, expected_op = CASES[case]()
    fp32, qdq = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, fp32)
    calib = Dataset({"x": _inputs(model, batch=64, seed=2)})
    quantize_int8_static(fp32, qdq, calib, TFLITE_SCHEME, "minmax", 16)
    x = _inputs(model, batch=8, seed=3)
    artifact, got = _run(qdq, x, "int8", resolver, tmp_path)
    ops = artifact.info["op_counts"]
    assert ops.get(expected_op, 0) >= 1 and ops.get("QUANTIZE", 0) >= 1, ops
    for want, have in zip(_reference(qdq, x, optimize=False), got, strict=True):
        spread = max(float(np.ptp(want)), 1e-6)
        assert np.abs(have - want).max() <= 0.04 * spread
        assert np.abs(have - want).mean() <= 0.005 * spread


def test_embedding_lookup_with_int64_ids(tmp_path):
    """Gather of a constant table by runtime int64 ids (an embedding) and a padding mask."""
    table = RNG.standard_normal((12, 6)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
        helper.make_node("Equal", ["ids", "zero"], ["pad"]),
        helper.make_node("Where", ["pad", "ninf", "zerof"], ["bias"]),
        helper.make_node("Unsqueeze", ["bias", "last"], ["bias3"]),
        helper.make_node("Add", ["emb", "bias3"], ["y"]),
        helper.make_node("Softmax", ["y"], ["p"], axis=1),
    ]
    inits = [
        onnx.numpy_helper.from_array(table, "table"),
        onnx.numpy_helper.from_array(np.array(0, np.int64), "zero"),
        onnx.numpy_helper.from_array(np.array(-1e4, np.float32), "ninf"),
        onnx.numpy_helper.from_array(np.array(0, np.float32), "zerof"),
        onnx.numpy_helper.from_array(_i64([2]), "last"),
    ]
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 5])
    out = helper.make_tensor_value_info("p", TensorProto.FLOAT, None)
    model = helper.make_model(
        helper.make_graph(nodes, "emb", [ids], [out], inits),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    path = tmp_path / "emb.onnx"
    onnx.save(model, path)
    x = np.array([[3, 1, 0, 0, 0], [11, 4, 7, 2, 0]], np.int64)
    import onnxruntime as ort

    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"ids": x}
    )[0]
    for resolver in RESOLVERS:
        artifact = TARGET.lower(path, "fp32", tmp_path, TfliteOptions())
        runner = TARGET.open_runner(artifact.path, 1, TfliteOptions(resolver=resolver))
        assert runner.inputs[0].dtype == "int64"
        got = runner.run({"ids": x})["p"]
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


# --dynamic: int8 weights (LSTM per tensor, FC per channel), float activations.
DYNAMIC_CASES = [
    "lstm_forward_peephole",
    "lstm_bidirectional",
    "gru_bidirectional",
    "gru_reverse",
    "layer_norm",
    "gelu_erf",
]


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize(
    ("case", "mode"), [(c, "dynamic") for c in DYNAMIC_CASES] + [(c, "fp16") for c in sorted(CASES)]
)
def test_fp16_and_dynamic_close_to_onnxruntime(case, mode, resolver, tmp_path):
    model, expected_op = CASES[case]()
    path = tmp_path / "case.onnx"
    onnx.save(model, path)
    x = _inputs(model, batch=1)
    artifact, got = _run(path, x, mode, resolver, tmp_path)
    assert artifact.info["op_counts"].get(expected_op, 0) >= 1, artifact.info["op_counts"]
    # Weight rounding only: int8 (1/254 of the largest weight) or fp16 (2^-11 relative).
    bound = 0.05 if mode == "dynamic" else 5e-3
    for want, have in zip(_reference(path, x), got, strict=True):
        if want.dtype.kind != "f":
            continue
        assert np.abs(have - want).max() <= bound * max(float(np.ptp(want)), 1.0)


def test_batch_matmul_folds_transposes_into_adjoint_flags(tmp_path):
    """A transposed operand (an ONNX Transpose, or Softmax's axis moved last) is read with
    adj_x / adj_y instead of a TRANSPOSE; the one TRANSPOSE left puts Softmax's axis last."""
    from ai_edge_litert import schema_py_generated as schema

    model, _ = CASES["batch_matmul_softmax_axis"]()
    onnx.save(model, tmp_path / "m.onnx")
    artifact = TARGET.lower(tmp_path / "m.onnx", "fp32", tmp_path, TfliteOptions())
    flat = schema.ModelT.InitFromPackedBuf((tmp_path / "model.tflite").read_bytes(), 0)
    flags = [
        (op.builtinOptions.adjX, op.builtinOptions.adjY)
        for op in flat.subgraphs[0].operators
        if isinstance(op.builtinOptions, schema.BatchMatMulOptionsT)
    ]
    assert flags == [(False, True), (True, False)]
    assert artifact.info["op_counts"]["TRANSPOSE"] == 1
