"""LSTM/GRU with their state as graph inputs and outputs (streaming models): lowered to .tflite
and run chunk after chunk with the state carried, against onnxruntime, on both resolvers."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from foundation.errors import UnsupportedOp
from targets.tflite import TARGET
from targets.tflite.options import TfliteOptions

RESOLVERS = ["default", "builtin"]
SEQ, BATCH, FEATURES, HIDDEN = 3, 1, 4, 5
CHUNKS = 4


def _recurrent_model(op_type: str, direction: str = "forward", **attrs: object) -> onnx.ModelProto:
    """x [seq, batch, in] and state inputs h0 (and c0) → Y, Y_h (and Y_c) as graph outputs."""
    rng = np.random.default_rng(7)
    gates, lstm = (4, True) if op_type == "LSTM" else (3, False)
    dirs = 2 if direction == "bidirectional" else 1
    peephole = attrs.pop("peephole", False)
    inits = [
        numpy_helper.from_array((rng.standard_normal(s) * 0.5).astype(np.float32), n)
        for n, s in (
            ("W", (dirs, gates * HIDDEN, FEATURES)),
            ("R", (dirs, gates * HIDDEN, HIDDEN)),
            ("B", (dirs, 2 * gates * HIDDEN)),
            ("P", (dirs, 3 * HIDDEN)),
        )
    ]
    inits.append(numpy_helper.from_array(np.full(BATCH, SEQ, np.int32), "lens"))
    major = bool(attrs.get("layout", 0))  # batch-major X, states and Y
    state = [BATCH, dirs, HIDDEN] if major else [dirs, BATCH, HIDDEN]
    names = ["x", "h0"] + (["c0"] if lstm else [])
    inputs = [
        helper.make_tensor_value_info(
            "x", TensorProto.FLOAT, [BATCH, SEQ, FEATURES] if major else [SEQ, BATCH, FEATURES]
        )
    ]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, state) for n in names[1:]]
    node_inputs = ["x", "W", "R", "B", "lens", "h0"] + (
        ["c0", "P" if peephole else ""] if lstm else []
    )
    outputs = ["y", "yh"] + (["yc"] if lstm else [])
    node = helper.make_node(
        op_type, node_inputs, outputs, hidden_size=HIDDEN, direction=direction, **attrs
    )
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
    graph = helper.make_graph(
        [node], "state", inputs, outs, inits if peephole else inits[:3] + inits[4:]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


CASES = {
    "lstm_forward": ("LSTM", {}),
    "lstm_peephole": ("LSTM", {"peephole": True}),
    "lstm_bidirectional": ("LSTM", {"direction": "bidirectional"}),
    "lstm_reverse_clip": ("LSTM", {"direction": "reverse", "clip": 0.7}),
    "lstm_input_forget": ("LSTM", {"input_forget": 1}),
    "lstm_relu_activations": ("LSTM", {"activations": ["Sigmoid", "Relu", "Tanh"]}),
    "lstm_batch_major_bidirectional": ("LSTM", {"layout": 1, "direction": "bidirectional"}),
    "gru_forward": ("GRU", {}),
    "gru_batch_major": ("GRU", {"layout": 1}),
    "gru_linear_before_reset": ("GRU", {"linear_before_reset": 1}),
    "gru_bidirectional_clip": ("GRU", {"direction": "bidirectional", "clip": 0.5}),
}


def _carry(run, model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
    """Run CHUNKS chunks, each chunk's final state the next chunk's initial state."""
    rng = np.random.default_rng(3)
    state = {
        i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        * 0.5
        for i in model.graph.input[1:]
    }
    results = []
    for _ in range(CHUNKS):
        dims = model.graph.input[0].type.tensor_type.shape.dim
        x = rng.standard_normal([d.dim_value for d in dims]).astype(np.float32)
        out = run({"x": x, **state})
        results.append(out)
        state = {"h0": out["yh"], **({"c0": out["yc"]} if "c0" in state else {})}
    return results


def _reference(op_type: str, attrs: dict, tmp_path):
    """onnxruntime on the model; batch-major (layout=1, which onnxruntime's CPU kernels do
    not run) on its time-major twin with the same weights, data transposed around it."""
    major = attrs.pop("layout", 0)
    path = tmp_path / "reference.onnx"
    onnx.save(_recurrent_model(op_type, **attrs), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    swap = {"x": (1, 0, 2), "h0": (1, 0, 2), "c0": (1, 0, 2), "y": (1, 2, 0, 3)}
    swap |= {"yh": (1, 0, 2), "yc": (1, 0, 2)}

    def run(feeds: dict) -> dict:
        feeds = {k: v.transpose(swap[k]) if major else v for k, v in feeds.items()}
        outs = dict(zip(names, session.run(None, feeds), strict=True))
        return {k: v.transpose(np.argsort(swap[k])) if major else v for k, v in outs.items()}

    return run


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_state_carried_over_chunks_matches_onnxruntime(case, resolver, tmp_path):
    op_type, attrs = CASES[case]
    model = _recurrent_model(op_type, **dict(attrs))
    path = tmp_path / "rnn.onnx"
    onnx.save(model, path)
    want = _carry(_reference(op_type, dict(attrs), tmp_path), model)
    names = [o.name for o in model.graph.output]
    artifact = TARGET.lower(path, "fp32", tmp_path, TfliteOptions())
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in artifact.info["op_counts"]
    runner = TARGET.open_runner(artifact.path, 1, TfliteOptions(resolver=resolver))
    got = _carry(runner.run, model)
    for expect, have in zip(want, got, strict=True):
        for name in names:
            assert have[name].shape == expect[name].shape
            np.testing.assert_allclose(have[name], expect[name], atol=2e-5, rtol=0)


@pytest.mark.parametrize(("form", "builtin_ops"), [("auto", 1), ("unrolled", 0)])
def test_zero_state_lstm_form_follows_the_lstm_option(form, builtin_ops, tmp_path):
    model = _recurrent_model("LSTM")
    for init in model.graph.input[1:]:
        model.graph.initializer.append(
            numpy_helper.from_array(np.zeros((1, BATCH, HIDDEN), np.float32), init.name)
        )
    keep = [model.graph.input[0]]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    del model.graph.output[2:]  # Y_c unread
    path = tmp_path / "zero.onnx"
    onnx.save(model, path)
    artifact = TARGET.lower(path, "fp32", tmp_path, TfliteOptions(lstm=form))
    assert artifact.info["op_counts"].get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0) == builtin_ops
    x = np.random.default_rng(2).standard_normal((SEQ, BATCH, FEATURES)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = TARGET.open_runner(artifact.path, 1, TfliteOptions()).run({"x": x})
    for name, expect in zip(("y", "yh"), want, strict=True):
        np.testing.assert_allclose(got[name], expect, atol=2e-5, rtol=0)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"activations": ["HardSigmoid", "Tanh", "Tanh"] * 2}, "HardSigmoid"),
        ({"activations": ["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Tanh"]}, "per direction"),
    ],
)
def test_unmapped_lstm_attributes_are_refused_by_name(attrs, message, tmp_path):
    model = _recurrent_model("LSTM", direction="bidirectional")
    node = model.graph.node[0]
    node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    with pytest.raises(UnsupportedOp, match=message):
        TARGET.lower(path, "fp32", tmp_path, TfliteOptions())


def test_ragged_sequence_lengths_are_refused(tmp_path):
    model = _recurrent_model("GRU")
    lens = next(i for i in model.graph.initializer if i.name == "lens")
    lens.CopyFrom(numpy_helper.from_array(np.array([SEQ - 1], np.int32), "lens"))
    path = tmp_path / "ragged.onnx"
    onnx.save(model, path)
    with pytest.raises(UnsupportedOp, match="sequence_lens"):
        TARGET.lower(path, "fp32", tmp_path, TfliteOptions())


@pytest.mark.parametrize("precision", ["fp16", "dynamic"])
@pytest.mark.parametrize("op_type", ["LSTM", "GRU"])
def test_state_inputs_in_fp16_and_dynamic_modes(op_type, precision, tmp_path):
    model = _recurrent_model(op_type)
    path = tmp_path / "rnn.onnx"
    onnx.save(model, path)
    want = _carry(_reference(op_type, {}, tmp_path), model)
    artifact = TARGET.lower(path, precision, tmp_path, TfliteOptions())
    got = _carry(TARGET.open_runner(artifact.path, 1, TfliteOptions()).run, model)
    for expect, have in zip(want, got, strict=True):
        for name, value in expect.items():
            # fp16 weights / int8 gate matrices (hybrid FULLY_CONNECTED) with float state
            np.testing.assert_allclose(have[name], value, atol=0.02)
