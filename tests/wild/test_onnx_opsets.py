"""ONNX from model zoos: old opsets and IR versions are upgraded, checked and compressed."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compressor.model.normalize import normalize_model
from foundation.errors import ModelLoadError

RNG = np.random.default_rng(7)


def _calib(path, name, shape, n=16):
    np.savez(path, **{name: RNG.random((n, *shape), dtype=np.float32)})
    return path


def test_opset9_ir3_zoo_cnn_compresses_to_fp32_and_int8(wild, tmp_path):
    """Conv, BN, LRN, MaxPool, Gemm at opset 9 / IR 3 with initializers listed as inputs."""
    model = wild.zoo_cnn(opset=9, ir_version=3)
    onnx.save(model, tmp_path / "zoo.onnx")
    calib = _calib(tmp_path / "calib.npz", "data", (3, 32, 32))
    feeds = {"data": RNG.random((1, 3, 32, 32), dtype=np.float32)}
    want = wild.ort_outputs(model, feeds)[0]

    result = wild.run(tmp_path / "zoo.onnx", "--target", "onnx", "-o", tmp_path / "fp32")
    assert result.exit_code == 0, result.output
    got = wild.artifact_outputs(tmp_path / "fp32", "onnx", feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    report = json.loads((tmp_path / "fp32" / "report.json").read_text())
    norm = report["passes"]["normalize"]
    assert (norm["opset_before"], norm["ir_before"], norm["opset"]) == (9, 3, 18)
    assert norm["check"] == "outputs identical to the original in onnxruntime"

    out = tmp_path / "int8"
    result = wild.run(tmp_path / "zoo.onnx", "--int8", "--calib", calib, "-o", out)
    assert result.exit_code == 0, result.output
    int8 = onnx.load(out / "model.onnx")
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    for arithmetic in wild.arithmetics_of(out):  # exact and AVX2 pairs: every CPU
        got = wild.artifact_outputs(out, "onnx", feeds, arithmetic)[0]
        cosine = np.dot(got.ravel(), want.ravel()) / np.linalg.norm(got) / np.linalg.norm(want)
        assert float(cosine) > 0.99, arithmetic


def test_opset9_ir3_cnn_without_lrn_lowers_to_tflite(wild, tmp_path):
    """The same zoo CNN with the LRN left out, fp32 and int8 on LiteRT."""
    model = wild.zoo_cnn(opset=9, ir_version=3, lrn=False)
    onnx.save(model, tmp_path / "zoo.onnx")
    calib = _calib(tmp_path / "calib.npz", "data", (3, 32, 32))
    feeds = {"data": RNG.random((1, 3, 32, 32), dtype=np.float32)}
    want = wild.ort_outputs(model, feeds)[0]
    for precision, flags in (("fp32", []), ("int8", ["--int8", "--calib", calib])):
        out = tmp_path / precision
        result = wild.run(tmp_path / "zoo.onnx", "-t", "tflite", *flags, "-o", out)
        assert result.exit_code == 0, result.output
        got = wild.artifact_outputs(out, "tflite", feeds)[0]
        tol = 1e-4 if precision == "fp32" else 0.05 * np.abs(want).max()
        np.testing.assert_allclose(got, want, atol=tol)


def test_opset6_model_is_checked_against_its_oldest_runnable_conversion(wild, tmp_path):
    """onnxruntime no longer runs opset 6: the check runs against the opset-7 conversion."""
    model = wild.zoo_cnn(opset=6, ir_version=3)
    upgraded, info = normalize_model(model, [], 18)
    assert (info["opset_before"], info["opset"], upgraded.ir_version) == (6, 18, 8)
    assert info["check"] == "outputs identical to its opset-7 conversion in onnxruntime"
    assert not {i.name for i in upgraded.graph.initializer} & {i.name for i in upgraded.graph.input}
    onnx.save(model, tmp_path / "zoo6.onnx")
    result = wild.run(tmp_path / "zoo6.onnx", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_opset11_resize_split_squeeze_attributes(wild, tmp_path, target):
    """Split/Squeeze attributes became inputs at opset 13; int8 needs per-channel DQ axis."""
    model = wild.opset11_segmenter()
    onnx.save(model, tmp_path / "seg.onnx")
    calib = _calib(tmp_path / "calib.npz", "x", (3, 16, 16))
    feeds = {"x": RNG.random((1, 3, 16, 16), dtype=np.float32)}
    want = wild.ort_outputs(model, feeds)[0]
    for precision in ("fp32", "int8"):
        out = tmp_path / precision
        flags = ["--int8", "--calib", calib] if precision == "int8" else []
        result = wild.run(tmp_path / "seg.onnx", "--target", target, *flags, "-o", out)
        assert result.exit_code == 0, result.output
        for arithmetic in wild.arithmetics_of(out):  # int8 onnx: exact and AVX2 pairs
            got = wild.artifact_outputs(out, target, feeds, arithmetic)[0]
            assert got.shape == want.shape == (1, 32, 32)
            if precision == "fp32":
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
            else:
                err = np.abs(got - want).max() / np.abs(want).max()
                assert err < 0.05, (err, arithmetic)


def test_an_op_the_converter_cannot_upgrade_is_named(tmp_path):
    node = helper.make_node("Upsample", ["x"], ["y"], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)])
    model.graph.node[0].op_type = "Crop"  # an experimental op the converter has no schema for
    with pytest.raises(ModelLoadError, match="Crop"):
        normalize_model(model, [], 18)
    model.opset_import[0].version = 13  # Q/DQ works at 13: the model is kept as it is
    kept, info = normalize_model(model, [], 18)
    assert info["upgrade"].startswith("kept at opset 13") and kept.opset_import[0].version == 13


def test_unsupported_op_fails_before_calibration(wild, tmp_path):
    """tflite has no Shrink: the int8 run stops at the fp32 lowering, before calibrating."""
    model = wild.zoo_cnn(opset=9, ir_version=3)
    lrn = next(n for n in model.graph.node if n.op_type == "LRN")  # LRN lowers to tflite now
    lrn.op_type = "Shrink"
    del lrn.attribute[:]
    onnx.save(model, tmp_path / "zoo.onnx")
    calib = _calib(tmp_path / "calib.npz", "data", (3, 32, 32))
    args = ["-t", "tflite", "--int8", "--calib", calib, "-o", tmp_path / "o"]
    result = wild.run(tmp_path / "zoo.onnx", *args)
    assert result.exit_code == 2 and "cannot lower Shrink" in result.output
    assert "calibrate" not in result.output and "quantize" not in result.output


def test_fixed_batch_gemm_then_transpose(wild, tmp_path):
    """A batch fixed to 4 (checked on 4 samples) and a Gemm whose output is transposed."""
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
        helper.make_node("Transpose", ["g"], ["y"], perm=[1, 0]),
    ]
    inits = [
        onnx.numpy_helper.from_array(RNG.normal(0, 0.3, (6, 8)).astype(np.float32), "w"),
        onnx.numpy_helper.from_array(RNG.normal(0, 0.1, (6,)).astype(np.float32), "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = 5
    onnx.save(model, tmp_path / "m.onnx")
    calib = _calib(tmp_path / "calib.npz", "x", (8,))
    feeds = {"x": RNG.random((4, 8), dtype=np.float32)}
    want = wild.ort_outputs(model, feeds)[0]
    for target in ("onnx", "tensorrt", "tflite"):
        out = tmp_path / target
        result = wild.run(tmp_path / "m.onnx", "-t", target, "--int8", "--calib", calib, "-o", out)
        assert result.exit_code == 0, (target, result.output)
        report = json.loads((out / "report.json").read_text())
        assert report["passes"]["normalize"]["check"].startswith("outputs identical")
        for arithmetic in wild.arithmetics_of(out):
            got = wild.artifact_outputs(out, target, feeds, arithmetic)[0]
            atol = 0.05 * np.abs(want).max()
            np.testing.assert_allclose(got, want, atol=atol, err_msg=f"{target} {arithmetic}")


def test_check_accepts_nan_where_the_original_gives_nan():
    """Log of seeded normal inputs gives NaN for negatives, in the original and upgrade alike."""
    graph = helper.make_graph(
        [helper.make_node("Log", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    upgraded, info = normalize_model(model, [], 18)
    assert info["check"] == "outputs identical to the original in onnxruntime"
    _, info = normalize_model(upgraded, [], 18)  # already normalised: nothing to check
    assert info["check"].startswith("not needed")
