"""Models from the wild, built in the tests: zoo-style ONNX at old opsets / IR versions with
weights from a seed, and helpers to run the real CLI and compare with onnxruntime."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.cli import main
from targets.registry import get_target, reference_runner
from tests.cli_runner import invoke_cli


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def zoo_cnn(
    opset: int = 9, ir_version: int = 3, seed: int = 0, batch: int | str = 1, lrn: bool = True
) -> onnx.ModelProto:
    """Conv → BN → Relu → LRN → MaxPool → Conv → Relu → GlobalAveragePool → Flatten → Gemm.

    IR 3 lists every initializer as a graph input too, as old exporters (and the zoo) did.
    """
    rng = np.random.default_rng(seed)
    inits = [
        _init("w1", rng.normal(0, 0.3, (8, 3, 3, 3))),
        _init("b1", rng.normal(0, 0.1, (8,))),
        _init("bn_scale", rng.uniform(0.5, 1.5, (8,))),
        _init("bn_bias", rng.normal(0, 0.1, (8,))),
        _init("bn_mean", rng.normal(0, 0.1, (8,))),
        _init("bn_var", rng.uniform(0.5, 1.5, (8,))),
        _init("w2", rng.normal(0, 0.2, (16, 8, 3, 3))),
        _init("b2", rng.normal(0, 0.1, (16,))),
        _init("fc_w", rng.normal(0, 0.2, (10, 16))),
        _init("fc_b", rng.normal(0, 0.1, (10,))),
    ]
    nodes = [
        helper.make_node("Conv", ["data", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node(
            "BatchNormalization",
            ["c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
            ["n1"],
            epsilon=1e-5,
            name="bn1",
        ),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("LRN", ["r1"], ["l1"], size=3, alpha=1e-4, beta=0.75, bias=1.0)
        if lrn
        else helper.make_node("Identity", ["r1"], ["l1"]),
        helper.make_node("MaxPool", ["l1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    data = helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, 32, 32])
    inputs = [data] + [
        helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits
    ] * (ir_version < 4)
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])
    graph = helper.make_graph(nodes, "zoo_cnn", inputs, [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def opset11_segmenter(
    seed: int = 0, height: int | str = 16, width: int | str = 16
) -> onnx.ModelProto:
    """An opset-11 head: Conv, Split (split attribute), Resize (scales), Squeeze (axes attribute).

    Opset 13 moved Split's `split` and Squeeze's `axes` from attributes to inputs; opset 11
    Resize takes roi and scales inputs.
    """
    rng = np.random.default_rng(seed)
    inits = [
        _init("w", rng.normal(0, 0.3, (4, 3, 3, 3))),
        _init("b", rng.normal(0, 0.1, (4,))),
        _init("wh", rng.normal(0, 0.3, (1, 2, 1, 1))),
        _init("roi", np.zeros((0,))),
        _init("scales", np.array([1, 1, 2, 2])),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Split", ["r"], ["s1", "s2"], axis=1, split=[2, 2]),
        helper.make_node("Add", ["s1", "s2"], ["a"]),
        helper.make_node(
            "Resize",
            ["a", "roi", "scales"],
            ["u"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        helper.make_node("Conv", ["u", "wh"], ["h"]),
        helper.make_node("Squeeze", ["h"], ["mask"], axes=[1]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, height, width])
    out = helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, "out_h", "out_w"])
    graph = helper.make_graph(nodes, "segmenter", [x], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    return model


def vad_model(seed: int = 0, sr_type: int = TensorProto.INT64) -> onnx.ModelProto:
    """A VAD-like step: audio x [B, 64], recurrent state [2, B, 16] (batch on axis 1) and a
    scalar sample rate; outputs a speech probability [B, 1] and the next state [2, B, 16]."""
    rng = np.random.default_rng(seed)
    inits = [
        _init("w_in", rng.normal(0, 0.2, (96, 32))),
        _init("b_in", rng.normal(0, 0.1, (32,))),
        _init("w_out", rng.normal(0, 0.3, (32, 1))),
        _init("rate", np.array(16000.0)),
        numpy_helper.from_array(np.array([-1, 32], np.int64), "flat"),
        numpy_helper.from_array(np.array([-1, 2, 16], np.int64), "split"),
    ]
    nodes = [
        helper.make_node("Cast", ["sr"], ["sr_f"], to=TensorProto.FLOAT)
        if sr_type != TensorProto.FLOAT
        else helper.make_node("Identity", ["sr"], ["sr_f"]),
        helper.make_node("Div", ["sr_f", "rate"], ["gain"]),
        helper.make_node("Mul", ["x", "gain"], ["xs"]),
        helper.make_node("Transpose", ["state"], ["st"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["st", "flat"], ["sf"]),
        helper.make_node("Concat", ["xs", "sf"], ["joined"], axis=1),
        helper.make_node("Gemm", ["joined", "w_in", "b_in"], ["h"]),
        helper.make_node("Tanh", ["h"], ["ht"]),
        helper.make_node("MatMul", ["ht", "w_out"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["prob"]),
        helper.make_node("Reshape", ["ht", "split"], ["hs"]),
        helper.make_node("Transpose", ["hs"], ["new_state"], perm=[1, 0, 2]),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 64]),
        helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "B", 16]),
        helper.make_tensor_value_info("sr", sr_type, []),
    ]
    outputs = [
        helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["B", 1]),
        helper.make_tensor_value_info("new_state", TensorProto.FLOAT, [2, "B", 16]),
    ]
    graph = helper.make_graph(nodes, "vad", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    return model


# Every subcommand but the implied `run`: they take no --no-default-floor. From the CLI group
# itself, so a new command (sweep, debug) is never mistaken for a model path.
SUBCOMMANDS = set(main.commands) - {"run"}


def run_cli(*args: object) -> object:
    """`compress ...` through the real CLI (few timed runs); the click result. A compress run
    without data gets --no-default-floor: it cannot compare outputs, these tests do it."""
    argv = [str(a) for a in args] + ["--runs", "3", "--warmup", "1"]
    if str(args[0]) not in SUBCOMMANDS and not {"--calib", "--eval", "--recipe"} & set(argv):
        argv.append("--no-default-floor")
    return invoke_cli(argv)


def ort_outputs(model: onnx.ModelProto | Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The outputs of an ONNX model (the original, untouched) in onnxruntime."""
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def artifact_outputs(
    out: Path, target: str, feeds: dict[str, np.ndarray], arithmetic: str | None = None
) -> list[np.ndarray]:
    """The outputs of the artifact a run wrote into out/, in its target's runtime, or for an
    int8 ONNX Runtime artifact in one int8 arithmetic of its CPU profile (see arithmetics_of;
    `input` names the only input of a single-input model)."""
    artifact = out / json.loads((out / "report.json").read_text())["artifact"]
    opened = (
        get_target(target).open_runner(artifact)
        if arithmetic is None
        else reference_runner(artifact, arithmetic=arithmetic)
    )
    with opened as runner:
        if list(feeds) == ["input"] and len(runner.inputs) == 1:
            feeds = {runner.inputs[0].name: feeds["input"]}
        return list(runner.run(feeds).values())


def arithmetics_of(out: Path) -> list[str | None]:
    """Every int8 arithmetic the run's CPU profile may compute its artifact in (exact and AVX2
    pairs for the default portable onnx int8), so a test checks them all on any host; [None]
    (the target's own runtime) when the artifact's arithmetic does not depend on the CPU."""
    record = json.loads((out / "report.json").read_text()).get("int8_arithmetic") or {}
    return list(record.get("profile_figures") or {}) or [None]


@pytest.fixture(scope="session")
def wild() -> types.SimpleNamespace:
    """The model builders and run helpers of this folder."""
    return types.SimpleNamespace(
        zoo_cnn=zoo_cnn,
        opset11_segmenter=opset11_segmenter,
        vad_model=vad_model,
        run=run_cli,
        ort_outputs=ort_outputs,
        artifact_outputs=artifact_outputs,
        arithmetics_of=arithmetics_of,
    )
