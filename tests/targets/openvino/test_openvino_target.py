"""The OpenVINO target in its real runtime: IR folder per precision, runtime layer precisions,
thread settings, per-layer tracing, refusals, and the CLI end to end (compress, bench, verify,
package, debug, and the exit-2 message where the extra is missing)."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from calibration.dataset import Dataset
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from foundation.errors import UnsupportedOp, UsageError
from targets.registry import get_target

openvino = pytest.importorskip("openvino", reason="the openvino extra is not installed")
TARGET = get_target("openvino")


@pytest.fixture(scope="module")
def graphs(example, tmp_path_factory):
    """The example CNN as cleaned fp32 ONNX and as Q/DQ ONNX in the target's scheme, plus data."""
    tmp = tmp_path_factory.mktemp("openvino")
    model = load_model(example["model"])
    cleanup_onnx(export_onnx(model, model.inputs, tmp / "raw.onnx"), tmp / "fp32.onnx")
    data = np.load(example["calib"])
    x = data[data.files[0]].astype(np.float32)
    calib = Dataset({model.inputs[0].name: x[:64]}, None, "calib")
    scheme = TARGET.capabilities.quant_scheme
    quantize_int8_static(tmp / "fp32.onnx", tmp / "int8.onnx", calib, scheme)
    return {"fp32": tmp / "fp32.onnx", "int8": tmp / "int8.onnx", "x": x[:32]}


def _outputs(artifact, x: np.ndarray, threads: int = 1) -> np.ndarray:
    with TARGET.open_runner(artifact.path, threads, artifact.options) as runner:
        return next(iter(runner.run({runner.inputs[0].name: x}).values()))


def test_each_precision_is_an_ir_folder_with_its_weight_storage(graphs, tmp_path):
    fp32 = TARGET.lower(graphs["fp32"], "fp32", tmp_path / "fp32")
    fp16 = TARGET.lower(graphs["fp32"], "fp16", tmp_path / "fp16")
    int8 = TARGET.lower(graphs["int8"], "int8", tmp_path / "int8")
    for artifact in (fp32, fp16, int8):
        assert artifact.path.name == "model.openvino" and artifact.path.is_dir()
        assert sorted(f.name for f in artifact.files) == ["model.bin", "model.xml"]
        assert artifact.info["runtime"] == f"openvino {openvino.__version__.split('-')[0]}"
    assert [a.info["weight_storage"] for a in (fp32, fp16, int8)] == ["fp32", "fp16", "int8"]
    weights = {a.precision: (a.path / "model.bin").stat().st_size for a in (fp32, fp16, int8)}
    assert weights["fp16"] < 0.55 * weights["fp32"] and weights["int8"] < 0.35 * weights["fp32"]
    want = _outputs(fp32, graphs["x"])
    half = _outputs(fp16, graphs["x"])
    assert np.abs(half - want).max() <= 5e-3 * np.ptp(want)


def test_int8_reports_every_conv_and_matmul_on_integer_kernels(graphs, tmp_path):
    artifact = TARGET.lower(graphs["int8"], "int8", tmp_path)
    layers = artifact.info["weighted_layers"]
    onnx_weighted = [
        n
        for n in onnx.load(str(graphs["int8"])).graph.node
        if n.op_type in ("Conv", "Gemm", "MatMul")
    ]
    assert len(layers) == len(onnx_weighted)
    assert {layer["precision"] for layer in layers} <= {"u8", "i8"}
    assert artifact.info["layer_precisions"] == {"u8": len(layers)}
    assert f"all {len(layers)} Conv/MatMul layers run on u8/i8 kernels" in artifact.info["notes"][0]
    fp32 = TARGET.lower(graphs["fp32"], "fp32", tmp_path / "fp32")
    assert {layer["precision"] for layer in fp32.info["weighted_layers"]} == {"f32"}


def test_runner_pins_threads_latency_and_f32_arithmetic(graphs, tmp_path):
    artifact = TARGET.lower(graphs["fp32"], "fp32", tmp_path)
    with TARGET.open_runner(artifact.path, 2, artifact.options) as runner:
        settings = runner.settings()
        assert settings["INFERENCE_NUM_THREADS"] == "2" and settings["NUM_STREAMS"] == "1"
        assert (
            settings["PERFORMANCE_HINT"] == "LATENCY" and settings["ENABLE_CPU_PINNING"] == "False"
        )
        assert settings["INFERENCE_PRECISION_HINT"] == "f32"
        assert runner.inputs[0].shape[0] is None  # the batch stays dynamic
        got = next(iter(runner.run({runner.inputs[0].name: graphs["x"][:3]}).values()))
    session = ort.InferenceSession(str(graphs["fp32"]), providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: graphs["x"][:3]})[0]
    np.testing.assert_allclose(got, want, atol=1e-4 * np.ptp(want))


def test_trace_layers_reads_dequantized_tensors_where_int8_kernels_made_them(graphs, tmp_path):
    artifact = TARGET.lower(graphs["int8"], "int8", tmp_path)
    traced = TARGET.trace_layers(artifact, {"x": graphs["x"]})
    value, where = traced["x"]
    np.testing.assert_allclose(value, np.round(graphs["x"] * 255) / 255, atol=1e-6)
    convs = [w for _, w in traced.values() if w.startswith("Convolution")]
    assert convs and all(w.endswith("(u8)") for w in convs)
    (output,) = onnx.load(str(graphs["int8"])).graph.output
    np.testing.assert_allclose(traced[output.name][0], _outputs(artifact, graphs["x"]), atol=1e-5)


def _unknown_op_graph(path) -> None:
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="example.custom")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)]
    )
    onnx.save(model, str(path))


def test_a_graph_openvino_cannot_read_is_refused_and_leaves_nothing(tmp_path):
    _unknown_op_graph(tmp_path / "bad.onnx")
    with pytest.raises(UnsupportedOp, match="OpenVINO .* cannot read this ONNX graph.*NoSuchOp"):
        TARGET.lower(tmp_path / "bad.onnx", "fp32", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_options_are_checked():
    assert TARGET.parse_options({"inference_precision": "bf16"}).inference_precision == "bf16"
    with pytest.raises(UsageError, match="inference_precision='f64' is not one of"):
        TARGET.parse_options({"inference_precision": "f64"})
    with pytest.raises(UsageError, match="supports precisions.*not 'dynamic'"):
        TARGET.check_request("dynamic")


def test_compress_auto_bench_verify_package_and_debug_run_in_openvino(example, tmp_path, cli):
    out = tmp_path / "out"
    args = [
        example["model"],
        "--target",
        "openvino",
        "--int8",
        "--auto",
        "--calib",
        example["calib"],
    ]
    result = cli([*args, "--eval", example["eval"], "--runs", "5", "--warmup", "1", "-o", out])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["compressed"]["runtime"] == "openvino" and report["artifact"] == "model.openvino"
    assert set(report["artifact_info"]["layer_precisions"]) == {"u8"}
    assert report["qdq_reference"]["top1_agreement"] >= 0.99
    tuning = report["passes"]["int8"]["tuning"]  # --auto trials ran and were timed in OpenVINO
    assert tuning["runtime"] == "openvino" and not tuning["proxy"]
    assert tuning["latency_runtime"].startswith("openvino")
    assert all(t["size_bytes"] > 10_000 for t in tuning["trials"])  # the folder's files, summed
    bench = cli(["bench", out / "model.openvino", "--runs", "3", "--json"])
    assert bench.exit_code == 0 and "openvino" in bench.output
    verify = [out / "model.openvino", "--baseline", example["model"], "--eval", example["eval"]]
    assert cli(["verify", *verify, "--runs", "3"]).exit_code == 0
    bundle = tmp_path / "bundle.tar.gz"
    assert cli(["package", out, "-o", bundle]).exit_code == 0
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["model"]["runtime_version"] == openvino.__version__.split("-")[0]
    assert {"model.openvino/model.xml", "model.openvino/model.bin"} <= set(manifest["files"])
    debug = [
        example["model"],
        "-t",
        "openvino",
        "--calib",
        example["calib"],
        "--calib-samples",
        "32",
    ]
    result = cli(["debug", *debug, "--json", tmp_path / "debug.json"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "debug.json").read_text())["layers"]
    traced = [r for r in rows if isinstance(r.get("artifact"), dict) and "sqnr_db" in r["artifact"]]
    assert traced and all(r["artifact"]["sqnr_db"] >= r["qdq"]["sqnr_db"] - 1.0 for r in traced)


def test_without_the_extra_the_target_says_how_to_install_it(example, tmp_path):
    """openvino made unimportable in a fresh interpreter: exit 2 with the pip command."""
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from compressor.cli import main\n"
        f"sys.argv = ['compress', {str(example['model'])!r}, '--target', 'openvino',"
        f" '-o', {str(tmp_path / 'out')!r}]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "pip install -e '.[openvino]'" in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


def test_outputs_keep_their_onnx_names_where_compiling_merges_names(tmp_path):
    """An ONNX output made by Identity shares its tensor with an inner name once compiled."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Identity", ["r"], ["y"]),
        helper.make_node("Neg", ["r"], ["z"]),
    ]
    spec = [1, 4]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, spec)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, spec) for n in ("y", "z")],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx"
    )
    artifact = TARGET.lower(tmp_path / "m.onnx", "fp32", tmp_path / "out")
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    with TARGET.open_runner(artifact.path) as runner:
        assert [s.name for s in runner.outputs] == ["y", "z"]
        got = runner.run({"x": x})
    np.testing.assert_array_equal(got["y"], np.maximum(x, 0))
    np.testing.assert_array_equal(got["z"], -np.maximum(x, 0))
