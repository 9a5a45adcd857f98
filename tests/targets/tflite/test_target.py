"""The tflite target as a whole: errors, options, SignatureDef, and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from ai_edge_litert import interpreter as litert
from onnx import TensorProto, helper

from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from foundation.errors import UnsupportedOp, UsageError
from targets.registry import get_target, target_for_artifact
from targets.tflite import TARGET
from targets.tflite.options import TfliteOptions
from tests.cli_runner import invoke_cli


@pytest.fixture(scope="module")
def example_onnx(example, tmp_path_factory):
    model = load_model(example["model"])
    tmp = tmp_path_factory.mktemp("tflite_target")
    return cleanup_onnx(export_onnx(model, model.inputs, tmp / "raw.onnx"), tmp / "fp32.onnx") and (
        tmp / "fp32.onnx"
    )


def test_registry_finds_tflite_by_name_and_suffix(tmp_path):
    assert get_target("tflite") is TARGET
    assert target_for_artifact(tmp_path / "m.tflite") is TARGET
    assert TARGET.availability()[0]


def test_unsupported_op_is_named_before_any_file_is_written(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("Hardmax", ["x"], ["y"], name="my_hardmax")
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)]
    )
    path = tmp_path / "hardmax.onnx"
    onnx.save(model, path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsupportedOp, match=r"tflite.*Hardmax \(node 'my_hardmax'\)"):
        TARGET.lower(path, "fp32", out, TfliteOptions())
    assert list(out.iterdir()) == []


def test_bad_resolver_is_rejected_before_any_work():
    with pytest.raises(UsageError, match="resolver"):
        TARGET.parse_options({"resolver": "gpu"})


@pytest.mark.parametrize("word", ["maybe", "", "2", "tru"])
def test_a_boolean_option_must_be_a_boolean_word(word):
    with pytest.raises(UsageError, match=f"nhwc_io='{word}' is not a boolean"):
        TARGET.parse_options({"nhwc_io": word})
    with pytest.raises(UsageError, match="not a boolean"):
        TfliteOptions(int8_io=word)


@pytest.mark.parametrize(
    ("word", "value"), [("TRUE", True), ("on", True), ("0", False), ("No", False)]
)
def test_boolean_words_are_accepted(word, value):
    assert TARGET.parse_options({"nhwc-io": word, "int8_io": word}) == TfliteOptions(value, value)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "dynamic"])
def test_int8_io_without_int8_is_rejected(example_onnx, tmp_path, precision):
    with pytest.raises(UsageError, match="int8_io=true only applies to --int8"):
        TARGET.lower(example_onnx, precision, tmp_path, TfliteOptions(int8_io=True))
    assert list(tmp_path.iterdir()) == []


def test_signature_def_and_nchw_float_io_by_default(example_onnx, tmp_path):
    artifact = TARGET.lower(example_onnx, "fp32", tmp_path, TfliteOptions())
    interp = litert.Interpreter(model_path=str(artifact.path))
    signature = interp.get_signature_list()["serving_default"]
    runner = interp.get_signature_runner("serving_default")
    (name,) = signature["inputs"]
    detail = runner.get_input_details()[name]
    assert list(detail["shape_signature"]) == [-1, 1, 8, 8] and detail["dtype"] == np.float32
    assert artifact.info["transpose_ops"] == artifact.info["transpose_edge"] == 1
    assert artifact.info["transpose_inner"] == 0


def _file_io(path):
    """The public I/O as the .tflite file itself declares it: {name: (shape_signature, dtype)}."""
    runner = litert.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    details = {**runner.get_input_details(), **runner.get_output_details()}
    return {n: (list(d["shape_signature"]), np.dtype(d["dtype"]).name) for n, d in details.items()}


def test_nhwc_io_removes_the_edge_transpose_and_runner_keeps_nchw(example_onnx, tmp_path):
    nchw = TARGET.lower(example_onnx, "fp32", tmp_path, TfliteOptions())
    reference = TARGET.open_runner(nchw.path)
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    want = next(iter(reference.run({reference.inputs[0].name: x}).values()))
    out = tmp_path / "nhwc"
    out.mkdir()
    artifact = TARGET.lower(example_onnx, "fp32", out, TfliteOptions(nhwc_io=True))
    assert artifact.info["transpose_ops"] == 0
    name = reference.inputs[0].name
    assert _file_io(artifact.path)[name] == ([-1, 8, 8, 1], "float32")  # the device's layout
    runner = TARGET.open_runner(artifact.path)
    assert runner.inputs == reference.inputs  # the runner takes the model's NCHW data
    got = next(iter(runner.run({name: x}).values()))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_nhwc_io_transposes_4d_outputs_back(tmp_path):
    """A conv whose 4-D output is NHWC in the file comes back NCHW, equal to onnxruntime."""
    import onnxruntime as ort
    from onnx import numpy_helper

    rng = np.random.default_rng(1)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 5, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 5, 4])
    w = numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])
    graph = helper.make_graph([conv], "g", [x], [y], [w])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    artifact = TARGET.lower(path, "fp32", tmp_path, TfliteOptions(nhwc_io=True))
    io = _file_io(artifact.path)
    assert io == {"x": ([-1, 5, 4, 2], "float32"), "y": ([-1, 5, 4, 3], "float32")}
    runner = TARGET.open_runner(artifact.path)
    assert [s.shape for s in runner.inputs + runner.outputs] == [(None, 2, 5, 4), (None, 3, 5, 4)]
    data = rng.standard_normal((2, 2, 5, 4)).astype(np.float32)
    (want,) = ort.InferenceSession(str(path)).run(None, {"x": data})
    np.testing.assert_allclose(runner.run({"x": data})["y"], want, atol=1e-5)


def _compress(example, out, *flags):
    args = [example["model"], "--target", "tflite", *flags, "--calib", example["calib"]]
    args += ["--eval", example["eval"], "--runs", "10", "--warmup", "2", "-o", out]
    return invoke_cli(args)


@pytest.mark.parametrize("flags", [[], ["--fp16"], ["--dynamic"], ["--int8"]])
def test_cli_compresses_the_example_in_every_mode(example, tmp_path, flags):
    result = _compress(example, tmp_path / "out", *flags, "--max-accuracy-drop", "1.0")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["artifact"] == "model.tflite" and report["passed"]
    assert report["compressed"]["runtime"] == "litert/default"
    info = report["artifact_info"]
    assert info["transpose_inner"] == 0 and info["conversion_s"] < 1.0
    fidelity = report["compressed"]["fidelity"]
    if not flags:
        assert fidelity["max_abs_error"] <= 1e-4 * 30
    assert fidelity["top1_agreement"] >= 0.99
    sizes = report["compressed"]["size_bytes"] / report["baseline"]["size_bytes"]
    assert sizes < {"--fp16": 0.55, "--dynamic": 0.3, "--int8": 0.3}.get(
        (flags or ["fp32"])[0], 1.01
    )


def test_cli_int8_io_and_builtin_resolver(example, tmp_path):
    result = _compress(
        example, tmp_path / "out", "--int8", "-O", "int8_io=true", "-O", "resolver=builtin"
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["compressed"]["runtime"] == "litert/builtin"
    assert report["compressed"]["fidelity"]["top1_agreement"] >= 0.99
    assert report["qdq_reference"]["top1_agreement"] >= 0.99


@pytest.mark.parametrize(
    ("flags", "dtype"),
    [([], "float32"), (["--int8", "-O", "int8_io=true"], "int8")],
    ids=["fp32-nhwc_io", "int8-nhwc_io-int8_io"],
)
def test_cli_nhwc_io_verifies_with_the_users_nchw_data(example, tmp_path, flags, dtype, cli):
    """The pipeline, bench --data and verify feed NCHW data to a file with NHWC I/O."""
    out = tmp_path / "out"
    result = _compress(example, out, *flags, "-O", "nhwc_io=true", "--max-accuracy-drop", "1.0")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] and report["artifact_info"]["transpose_ops"] == 0
    assert report["compressed"]["accuracy"] >= report["baseline"]["accuracy"] - 0.01
    assert report["compressed"]["accuracy"] > 0.9
    assert report["compressed"]["fidelity"]["top1_agreement"] >= 0.99
    assert _file_io(out / "model.tflite")["x"] == ([-1, 8, 8, 1], dtype)
    bench = ["bench", out / "model.tflite", "--data", example["eval"], "--runs", "5", "--json"]
    result = cli(bench)
    assert result.exit_code == 0, result.output
    verify = ["verify", out / "model.tflite", "--baseline", example["model"]]
    verify += ["--eval", example["eval"], "--max-accuracy-drop", "1.0", "--runs", "5"]
    result = cli(verify)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--fp16", "-O", "int8_io=true"], "int8_io=true only applies to --int8"),
        (["-O", "nhwc_io=maybe"], "nhwc_io='maybe' is not a boolean"),
    ],
)
def test_cli_rejects_bad_tflite_options_with_exit_2(example, tmp_path, flags, message):
    result = _compress(example, tmp_path / "out", *flags)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_int8_edges_default_and_with_nhwc_int8_io(example, example_onnx, tmp_path):
    from calibration.loaders import load_dataset
    from compressor.passes.quantize import quantize_int8_static
    from targets.tflite.capabilities import TFLITE_SCHEME

    calib = load_dataset(str(example["calib"]), {})
    calib = type(calib)({"x": next(iter(calib.inputs.values()))[:128]})
    qdq = tmp_path / "qdq.onnx"
    quantize_int8_static(example_onnx, qdq, calib, TFLITE_SCHEME, "minmax", 16)
    default = TARGET.lower(qdq, "int8", tmp_path, TfliteOptions()).info["op_counts"]
    assert (default["TRANSPOSE"], default["QUANTIZE"], default["DEQUANTIZE"]) == (1, 1, 1)
    bare = tmp_path / "bare"
    bare.mkdir()
    options = TfliteOptions(nhwc_io=True, int8_io=True)
    ops = TARGET.lower(qdq, "int8", bare, options).info["op_counts"]
    assert not {"TRANSPOSE", "QUANTIZE", "DEQUANTIZE"} & set(ops), ops


def test_batch_dependent_arithmetic_falls_back_to_batch_one(tmp_path):
    """y = x + row_index: the index arithmetic folds only once the batch is fixed."""
    from onnx import numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    consts = {"zero": np.array(0, np.int64), "one": np.array(1, np.int64)}
    consts["col"] = np.array([-1, 1], np.int64)
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["n"], name="batch_size", axis=0),
        helper.make_node("Range", ["zero", "n", "one"], ["rows"], name="rows"),
        helper.make_node("Cast", ["rows"], ["rows_f"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["rows_f", "col"], ["rows_col"], name="column"),
        helper.make_node("Add", ["x", "rows_col"], ["y"], name="add"),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "rows.onnx"
    onnx.save(model, path)
    artifact = TARGET.lower(path, "fp32", tmp_path, TfliteOptions())
    assert any("batch fixed to 1" in note for note in artifact.info["notes"])
    runner = TARGET.open_runner(artifact.path)
    assert runner.fixed_batch == 1
    data = np.arange(4, dtype=np.float32).reshape(1, 4)
    np.testing.assert_allclose(runner.run({"x": data})["y"], data)
