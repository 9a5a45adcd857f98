"""The ONNX spec of each op rule, attribute by attribute and mode by mode: a one-node graph per
case lowered to .tflite and run on both LiteRT resolvers against onnxruntime, or refused with
an UnsupportedOp naming what is not lowered."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration.dataset import Dataset
from compressor.passes.quantize import quantize_int8_static
from foundation.errors import UnsupportedOp
from targets.tflite import TARGET
from targets.tflite.capabilities import TFLITE_SCHEME
from targets.tflite.options import TfliteOptions
from targets.tflite.runner import check_opens
from targets.tflite.writer import FlatModelBuilder
from tests.targets.tflite.test_ops import GraphBuilder, _inputs, _reference

RNG = np.random.default_rng(11)
F = TensorProto.FLOAT


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def _f32(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


def one_node(op, inputs, consts=None, outputs=1, opset=18, **attrs) -> onnx.ModelProto:
    """A graph of one `op`: `inputs` maps runtime input names to shapes (float), `consts`
    names to arrays; the node reads them in that order."""
    consts = consts or {}
    names = list(inputs) + list(consts)
    types = attrs.pop("out_types", [F] * outputs)
    outs = [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, names, outs, name="node", **attrs)
    graph = helper.make_graph(
        [node],
        "spec",
        [helper.make_tensor_value_info(n, F, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(o, t, None) for o, t in zip(outs, types, strict=True)],
        [numpy_helper.from_array(v, n) for n, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return onnx.shape_inference.infer_shapes(model)


X4 = {"x": [1, 3, 7, 6]}
POOL = {"kernel_shape": [3, 3], "strides": [2, 2]}
CONV_W = {"w": _f32(4, 3, 3, 3)}
LOWERED = {
    # variadic elementwise: 1..N inputs with broadcasting
    "sum_1": one_node("Sum", {"a": [2, 3]}),
    "sum_3_broadcast": one_node("Sum", {"a": [2, 3], "b": [3], "c": [2, 1]}),
    "mean_3": one_node("Mean", {"a": [2, 3], "b": [2, 3], "c": [1, 3]}),
    "max_1": one_node("Max", {"a": [4]}),
    "max_3": one_node("Max", {"a": [2, 3], "b": [3], "c": [2, 3]}),
    "min_2": one_node("Min", {"a": [2, 3], "b": [2, 1]}),
    "min_4": one_node("Min", {"a": [3], "b": [3], "c": [3], "d": [1]}),
    # Pad: every mode, a non-zero value, negative pads, the axes input
    "pad_constant": one_node("Pad", X4, {"p": _i64(0, 0, 1, 2, 0, 0, 2, 1)}),
    "pad_constant_value": one_node(
        "Pad", X4, {"p": _i64(0, 1, 1, 0, 0, 0, 1, 1), "v": np.float32(1.5)}
    ),
    "pad_reflect": one_node("Pad", X4, {"p": _i64(0, 0, 2, 1, 0, 0, 1, 2)}, mode="reflect"),
    "pad_edge": one_node("Pad", X4, {"p": _i64(0, 0, 2, 1, 0, 0, 1, 3)}, mode="edge"),
    "pad_wrap": one_node("Pad", X4, {"p": _i64(0, 0, 2, 1, 0, 0, 1, 3)}, mode="wrap"),
    "pad_edge_negative": one_node("Pad", X4, {"p": _i64(0, 0, -1, 2, 0, 0, 2, -2)}, mode="edge"),
    "pad_constant_negative": one_node("Pad", X4, {"p": _i64(0, 0, -2, 1, 0, 0, 1, -1)}),
    "pad_axes": one_node(
        "Pad", X4, {"p": _i64(1, 2, 2, 0), "v": np.float32(0.0), "axes": _i64(-1, 2)}
    ),
    # auto_pad and pooling attributes
    **{
        f"conv_{mode.lower()}": one_node(
            "Conv", X4, CONV_W, kernel_shape=[3, 3], strides=[2, 2], auto_pad=mode
        )
        for mode in ("SAME_UPPER", "SAME_LOWER", "VALID")
    },
    **{
        f"{op.lower()}_{mode.lower()}": one_node(op, X4, auto_pad=mode, **POOL)
        for op in ("MaxPool", "AveragePool")
        for mode in ("SAME_UPPER", "SAME_LOWER", "VALID")
    },
    "maxpool_ceil_storage_order": one_node("MaxPool", X4, ceil_mode=1, storage_order=1, **POOL),
    "avgpool_include_pad_ceil": one_node(
        "AveragePool", X4, pads=[1, 0, 1, 1], count_include_pad=1, ceil_mode=1, **POOL
    ),
    **{
        f"convtranspose_{mode.lower()}": one_node(
            "ConvTranspose", X4, {"w": _f32(3, 2, 3, 3)}, strides=[2, 2], auto_pad=mode
        )
        for mode in ("SAME_UPPER", "SAME_LOWER")
    },
    "convtranspose_output_shape": one_node(
        "ConvTranspose", X4, {"w": _f32(3, 2, 3, 3)}, strides=[2, 2], output_shape=[14, 12]
    ),
    # per-channel and runtime PRelu slopes
    "prelu_channel": one_node("PRelu", X4, {"s": _f32(3, 1, 1)}),
    "prelu_full": one_node("PRelu", X4, {"s": _f32(3, 7, 6)}),
    "prelu_runtime_slope": one_node("PRelu", {"x": [2, 3, 5], "s": [5]}),
    # other attributes and modes
    "gemm_trans_a": one_node(
        "Gemm", {"a": [4, 2]}, {"b": _f32(4, 3), "c": _f32(3)}, transA=1, alpha=0.5, beta=2.0
    ),
    "gelu_tanh": one_node("Gelu", {"x": [2, 5]}, opset=20, approximate="tanh"),
    "topk_smallest": one_node(
        "TopK",
        {"x": [3, 6]},
        {"k": _i64(2)},
        outputs=2,
        largest=0,
        out_types=[F, TensorProto.INT64],
    ),
    "layernorm_mean_invstd": one_node(
        "LayerNormalization", {"x": [2, 3, 4]}, {"g": _f32(4), "b": _f32(4)}, outputs=3, axis=-1
    ),
    "resize_nearest_half_pixel": one_node(
        "Resize", X4, {"roi": np.zeros(0, np.float32), "s": np.float32([1, 1, 2, 2])}
    ),
    "clip_no_bounds": one_node("Clip", {"x": [3, 4]}),
    "gather_negative_indices": one_node("Gather", {"x": [5, 3]}, {"i": _i64(-1, 0, -3)}),
    "pow_int_exponent": one_node("Pow", {"x": [2, 3]}, {"e": np.array(3, np.int64)}),
    "reduce_sum_noop_empty_axes": one_node(
        "ReduceSum", {"x": [2, 3]}, {"a": np.zeros(0, np.int64)}, noop_with_empty_axes=1
    ),
    "reduce_mean_empty_axes": one_node("ReduceMean", {"x": [2, 3]}, {"a": np.zeros(0, np.int64)}),
    "identity_of_input": one_node("Identity", {"x": [2, 3]}),
    # opset 11 Softmax coerces to 2-D from axis (upgraded to opset 13 before lowering)
    "softmax_opset11_axis1": one_node("Softmax", X4, opset=11, axis=1),
    "clip_opset6_attributes": one_node("Clip", {"x": [3, 4]}, opset=6, min=-0.2, max=0.3),
    "argmax_select_last_index": one_node(
        "ArgMax", {"x": [3, 4]}, axis=1, select_last_index=1, out_types=[TensorProto.INT64]
    ),
    "argmin_select_last_keepdims_0": one_node(
        "ArgMin", {"x": [3, 4]}, keepdims=0, select_last_index=1, out_types=[TensorProto.INT64]
    ),
}

REFUSED = {
    "maxpool_dilations": (one_node("MaxPool", X4, dilations=[2, 2], **POOL), "dilated"),
    "maxpool_indices": (one_node("MaxPool", X4, outputs=2, **POOL), "Indices"),
    "batchnorm_training": (
        one_node(
            "BatchNormalization",
            X4,
            {n: np.abs(_f32(3)) for n in "sbmv"},
            training_mode=1,
            outputs=3,
        ),
        "training_mode",
    ),
    "space_to_depth_crd": (
        one_node("SpaceToDepth", {"x": [1, 2, 4, 4]}, opset=28, blocksize=2, mode="CRD"),
        "mode",
    ),
    "resize_antialias": (lambda: _antialias_model(), "antialias"),
    "resize_cubic": (
        one_node(
            "Resize",
            X4,
            {"roi": np.zeros(0, np.float32), "s": np.float32([1, 1, 2, 2])},
            mode="cubic",
        ),
        "cubic",
    ),
    "resize_off_grid_scale": (
        one_node(
            "Resize",
            X4,
            {"roi": np.zeros(0, np.float32), "s": np.float32([1, 1, 0.6, 0.6])},
            mode="linear",
        ),
        "scale",
    ),
    "pad_reflect_too_far": (
        one_node("Pad", X4, {"p": _i64(0, 0, 7, 0, 0, 0, 0, 0)}, mode="reflect"),
        "reflects",
    ),
    "dropout_training": (
        one_node("Dropout", {"x": [3, 4]}, {"r": np.float32(0.5), "t": np.array(True)}, outputs=1),
        "training",
    ),
    "gemm_bias_matrix": (
        one_node("Gemm", {"a": [3, 2]}, {"b": _f32(2, 4), "c": _f32(3, 4)}),
        "bias",
    ),
    "matmul_1d": (one_node("MatMul", {"a": [3, 4]}, {"b": _f32(4)}), "1-D"),
    "gathernd_batch_dims": (
        one_node("GatherND", {"x": [2, 3]}, {"i": np.zeros((2, 1), np.int64)}, batch_dims=1),
        "batch_dims",
    ),
    "reduce_bool": (lambda: _bool_reduce(), "bools"),
    "int16_input": (lambda: _int16_input(), "INT16"),
    "zero_sized": (one_node("Relu", {"x": [2, 0]}), "zero-sized"),
}


def _bool_reduce() -> onnx.ModelProto:
    cast = helper.make_node("Cast", ["x"], ["b"], to=TensorProto.BOOL)
    node = helper.make_node("ReduceMax", ["b"], ["r"], keepdims=0)
    out = helper.make_node("Cast", ["r"], ["y0"], to=TensorProto.FLOAT)
    graph = helper.make_graph(
        [cast, node, out],
        "g",
        [helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("y0", F, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _int16_input() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y0"], to=TensorProto.FLOAT)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.INT16, [2])],
        [helper.make_tensor_value_info("y0", F, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        for i in model.graph.input
    }


@pytest.mark.parametrize("resolver", ["default", "builtin"])
@pytest.mark.parametrize("case", sorted(LOWERED))
def test_lowered_case_matches_onnxruntime(case, resolver, tmp_path):
    model = LOWERED[case]
    path = tmp_path / "case.onnx"
    onnx.save(model, path)
    feeds = _feeds(model)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)
    artifact = TARGET.lower(path, "fp32", tmp_path, TfliteOptions())
    runner = TARGET.open_runner(artifact.path, 1, TfliteOptions(resolver=resolver))
    got = runner.run(feeds)
    for output, expect in zip(model.graph.output, want, strict=True):
        have = got[output.name]
        assert have.shape == expect.shape, (output.name, have.shape, expect.shape)
        np.testing.assert_allclose(have, expect, atol=1e-4 * max(np.abs(expect).max(), 1.0))


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unlowered_case_is_refused_by_name(case, tmp_path):
    model, message = REFUSED[case]
    model = model() if callable(model) else model
    path = tmp_path / "case.onnx"
    onnx.save(model, path)
    with pytest.raises(UnsupportedOp, match=message):
        TARGET.lower(path, "fp32", tmp_path, TfliteOptions())
    assert not (tmp_path / "model.tflite").exists()


def _antialias_model() -> onnx.ModelProto:
    model = one_node(
        "Resize", X4, {"roi": np.zeros(0, np.float32), "s": np.float32([1, 1, 0.5, 0.5])}
    )
    model.graph.node[0].attribute.extend([helper.make_attribute("antialias", 1)])
    return model


def _int8_case(kind: str) -> onnx.ModelProto:
    """conv → the op under test → conv, so the op sits between quantized tensors (weights
    from this module's generator: test_ops' shared one must not shift with test order)."""
    g = GraphBuilder((1, 4, 6, 6))

    def conv(x: str) -> str:
        return g.op("Conv", [x, g.const(_f32(4, 4, 1, 1)), g.const(_f32(4))], kernel_shape=[1, 1])

    y = conv("x")
    if kind in ("edge", "wrap"):
        y = g.op("Pad", [y, g.const(_i64(0, 0, 1, 2, 0, 0, 2, 1))], mode=kind)
    elif kind in ("Sum", "Max", "Mean"):
        y = g.op(kind, [y, conv("x"), "x"])
    else:
        y = g.op(kind, [y], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER")
    return g.model(conv(y))


@pytest.mark.parametrize("resolver", ["default", "builtin"])
@pytest.mark.parametrize("kind", ["edge", "wrap", "Sum", "Max", "Mean", "MaxPool", "AveragePool"])
def test_int8_case_matches_onnxruntime_qdq(kind, resolver, tmp_path):
    model = _int8_case(kind)
    fp32, qdq = tmp_path / "fp32.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, fp32)
    quantize_int8_static(
        fp32, qdq, Dataset({"x": _inputs(model, 64, 2)}), TFLITE_SCHEME, "minmax", 16
    )
    x = _inputs(model, 8, 3)
    artifact = TARGET.lower(qdq, "int8", tmp_path, TfliteOptions())
    assert artifact.info["op_counts"].get("QUANTIZE", 0) >= 1
    got = TARGET.open_runner(artifact.path, 1, TfliteOptions(resolver=resolver)).run({"x": x})
    want = _reference(qdq, x, optimize=False)[0]
    have = next(iter(got.values()))
    assert np.abs(have - want).max() <= 0.04 * max(float(np.ptp(want)), 1e-6)


def test_a_file_litert_refuses_is_refused_before_it_counts_as_lowered(tmp_path):
    """check_opens opens each written file on both resolvers: here a POW with mixed operand
    types (what the lowering wrote before Pow's exponent was cast) must be refused."""
    builder = FlatModelBuilder()
    x = builder.add_tensor("x", (2,), "float32")
    e = builder.add_tensor("e", (2,), "int64")
    y = builder.add_tensor("y", (2,), "float32")
    builder.add_op("POW", [x, e], [y])
    builder.inputs += [("x", x), ("e", e)]
    builder.outputs.append(("y", y))
    path = tmp_path / "mixed_pow.tflite"
    path.write_bytes(builder.to_bytes())
    with pytest.raises(UnsupportedOp, match="refuses the lowered file"):
        check_opens(path)
