"""Int8 on graphs whose biases and weights are laid out as shipped models lay them out.

Each pattern is an opset-11 graph (Q/DQ with per-channel axis needs opset 13: normalisation
upgrades it); the int8 graph must be valid for every target, and close to the original.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx import numpy_helper as nh

RNG = np.random.default_rng(0)


def _f(name, array):
    return nh.from_array(np.asarray(array, np.float32), name)


def _w():
    return RNG.normal(0, 0.3, (4, 4, 3, 3))


def _b():
    return RNG.normal(0, 0.1, (4,))


def _conv(x, w, b, y):
    return helper.make_node("Conv", [x, w, *([b] if b else [])], [y], pads=[1, 1, 1, 1])


def _patterns() -> dict[str, tuple[list, list, list]]:
    """name -> (nodes, initializers, output shape); input x is [1, 4, 8, 8]."""
    relu = helper.make_node("Relu", ["c1"], ["r"])
    return {
        "bias shared by two convs": (
            [_conv("x", "w1", "b", "c1"), relu, _conv("r", "w2", "b", "y")],
            [_f("w1", _w()), _f("w2", _w()), _f("b", _b())],
            [1, 4, 8, 8],
        ),
        "bias also read by an Add": (
            [
                _conv("x", "w1", "b", "c1"),
                helper.make_node("Reshape", ["b", "s"], ["b4"]),
                helper.make_node("Add", ["c1", "b4"], ["y"]),
            ],
            [_f("w1", _w()), _f("b", _b()), nh.from_array(np.array([1, 4, 1, 1], np.int64), "s")],
            [1, 4, 8, 8],
        ),
        "weight tied between convs": (
            [_conv("x", "w1", "b1", "c1"), relu, _conv("r", "w1", "b2", "y")],
            [_f("w1", _w()), _f("b1", _b()), _f("b2", _b())],
            [1, 4, 8, 8],
        ),
        "tf2onnx NHWC transposes, transposed weight, 1-D bias Add": (
            [
                helper.make_node("Transpose", ["x"], ["xh"], perm=[0, 2, 3, 1]),
                helper.make_node("Transpose", ["xh"], ["xc"], perm=[0, 3, 1, 2]),
                helper.make_node("Transpose", ["wh"], ["w"], perm=[3, 2, 0, 1]),
                _conv("xc", "w", None, "c"),
                helper.make_node("Transpose", ["c"], ["ch"], perm=[0, 2, 3, 1]),
                helper.make_node("Add", ["ch", "b"], ["ah"]),
                helper.make_node("Relu", ["ah"], ["rh"]),
                helper.make_node("Transpose", ["rh"], ["y"], perm=[0, 3, 1, 2]),
            ],
            [_f("wh", RNG.normal(0, 0.3, (3, 3, 4, 4))), _f("b", _b())],
            [1, 4, 8, 8],
        ),
        "MatMul with the bias as the Add's first input": (
            [
                helper.make_node("Flatten", ["x"], ["fl"]),
                helper.make_node("MatMul", ["fl", "wm"], ["mm"]),
                helper.make_node("Add", ["bm", "mm"], ["y"]),
            ],
            [_f("wm", RNG.normal(0, 0.1, (256, 10))), _f("bm", RNG.normal(0, 0.1, (10,)))],
            [1, 10],
        ),
        "bias from a Constant node": (
            [
                helper.make_node("Constant", [], ["b"], value=_f("bv", _b())),
                _conv("x", "w1", "b", "c1"),
                helper.make_node("Relu", ["c1"], ["y"]),
            ],
            [_f("w1", _w())],
            [1, 4, 8, 8],
        ),
        "ConvTranspose with bias": (
            [helper.make_node("ConvTranspose", ["x", "wt", "b"], ["y"], strides=[2, 2])],
            [_f("wt", RNG.normal(0, 0.3, (4, 4, 2, 2))), _f("b", _b())],
            [1, 4, 16, 16],
        ),
        "Gemm pair sharing one bias": (
            [
                helper.make_node("Flatten", ["x"], ["fl"]),
                helper.make_node("Gemm", ["fl", "g1", "gb"], ["h"], transB=1),
                helper.make_node("Relu", ["h"], ["hr"]),
                helper.make_node("Gemm", ["hr", "g2", "gb"], ["y"], transB=1),
            ],
            [
                _f("g1", RNG.normal(0, 0.1, (10, 256))),
                _f("g2", RNG.normal(0, 0.1, (10, 10))),
                _f("gb", RNG.normal(0, 0.1, (10,))),
            ],
            [1, 10],
        ),
    }


PATTERNS = _patterns()


@pytest.mark.parametrize("name", list(PATTERNS))
def test_int8_graph_is_valid_on_every_target(wild, tmp_path, name):
    nodes, inits, out_shape = PATTERNS[name]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    model = helper.make_model(
        helper.make_graph(nodes, "pattern", [x], [y], initializer=inits),
        opset_imports=[helper.make_opsetid("", 11)],
    )
    model.ir_version = 6
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=RNG.random((16, 4, 8, 8), dtype=np.float32))
    feeds = {"x": RNG.random((1, 4, 8, 8), dtype=np.float32)}
    want = wild.ort_outputs(model, feeds)[0]
    for target in ("onnx", "tensorrt", "tflite"):
        out = tmp_path / target
        args = ["-t", target, "--int8", "--calib", tmp_path / "calib.npz", "-o", out]
        result = wild.run(tmp_path / "m.onnx", *args)
        assert result.exit_code == 0, (target, result.output)
        if target != "tflite":
            onnx.checker.check_model(onnx.load(out / "model.onnx"), full_check=True)
        for arithmetic in wild.arithmetics_of(out):  # exact and AVX2 pairs for onnx
            got = wild.artifact_outputs(out, target, feeds, arithmetic)[0]
            bound = 0.05 * max(1.0, np.abs(want).max())
            assert np.abs(got - want).max() < bound, (target, arithmetic)
