"""Benchmark CNNs of the zoo lowered in all four modes, checked against torch and onnxruntime.

The fast tests use untrained zoo models (the numbers compared are the same whatever the
weights); the slow test trains them and checks the issue's accuracy bar.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.zoo import build_model, export_program, trained_model, zoo_data
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import quantize_int8_static
from targets.registry import EXACT_ARITHMETIC, reference_runner
from targets.tflite import TARGET
from targets.tflite.capabilities import TFLITE_SCHEME
from targets.tflite.options import TfliteOptions

CNNS = ["lenet", "resnet", "mobilenet"]
MODES = ["fp32", "fp16", "dynamic", "int8"]


def _prepare(model: torch.nn.Module, name: str, folder) -> dict:
    """Export to .pt2 → ONNX (cleaned) and a TFLite-scheme Q/DQ graph, as the pipeline does."""
    torch.manual_seed(0)
    torch.export.save(export_program(model.eval(), name), str(folder / "model.pt2"))
    loaded = load_model(folder / "model.pt2")
    fp32 = cleanup_onnx(export_onnx(loaded, loaded.inputs, folder / "raw.onnx"), folder / "f.onnx")
    assert fp32["batchnorm_left"] == 0
    data = zoo_data(name)
    quantize_int8_static(
        folder / "f.onnx", folder / "q.onnx", data["calib"].take(256), TFLITE_SCHEME, "minmax", 16
    )
    return {"fp32": folder / "f.onnx", "int8": folder / "q.onnx", "eval": data["eval"]}


def _run(path, x: np.ndarray, resolver: str) -> np.ndarray:
    runner = TARGET.open_runner(path, 1, TfliteOptions(resolver=resolver))
    batch = runner.fixed_batch or len(x)
    name = runner.inputs[0].name
    chunks = [runner.run({name: x[i : i + batch]}) for i in range(0, len(x), batch)]
    return np.concatenate([next(iter(c.values())) for c in chunks])


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    """The Q/DQ graph in exact int32 arithmetic, as LiteRT's XNNPACK computes it on every CPU
    (onnxruntime's own kernels sum u8×s8 pairs in a saturating int16 on CPUs without VNNI)."""
    runner = reference_runner(path, arithmetic=EXACT_ARITHMETIC)
    return runner.run({runner.inputs[0].name: x})[runner.outputs[0].name]


def _check(model, graphs, mode, resolver, out) -> dict:
    x = graphs["eval"].inputs["x"]
    source = graphs["int8" if mode == "int8" else "fp32"]
    artifact = TARGET.lower(source, mode, out, TfliteOptions())
    assert artifact.info["transpose_inner"] == 0, artifact.info["op_counts"]
    got = _run(artifact.path, x, resolver)
    with torch.inference_mode():
        torch_out = model(torch.from_numpy(x)).numpy()
    ort_out = _onnxruntime(source, x)
    return {
        "error": float(np.abs(got - torch_out).max() / np.ptp(torch_out)),
        "agree_ort": float((got.argmax(1) == ort_out.argmax(1)).mean()),
        "accuracy": float((got.argmax(1) == graphs["eval"].labels).mean()),
        "torch_accuracy": float((torch_out.argmax(1) == graphs["eval"].labels).mean()),
        "info": artifact.info,
    }


@pytest.fixture(scope="module", params=CNNS)
def untrained(request, tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(request.param).eval()
    return model, _prepare(model, request.param, tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("resolver", ["default", "builtin"])
@pytest.mark.parametrize("mode", MODES)
def test_zoo_cnn_lowers_in_every_mode(untrained, mode, resolver, tmp_path):
    model, graphs = untrained
    result = _check(model, graphs, mode, resolver, tmp_path)
    bound = {"fp32": 1e-4, "fp16": 5e-3, "dynamic": 5e-2, "int8": 1e-1}[mode]
    assert result["error"] <= bound
    if mode == "int8":
        assert result["agree_ort"] >= 0.97


def test_resnet_lowers_in_every_mode_and_records_its_conversion_time(tmp_path):
    """Conversion speed is tracked in benchmarks/tflite_lowering.py (conversion_ms), not here."""
    torch.manual_seed(0)
    graphs = _prepare(build_model("resnet").eval(), "resnet", tmp_path)
    for mode in MODES:
        artifact = TARGET.lower(
            graphs["int8" if mode == "int8" else "fp32"], mode, tmp_path, TfliteOptions()
        )
        assert artifact.path.read_bytes()[4:8] == b"TFL3", mode
        assert artifact.info["conversion_s"] > 0, mode


@pytest.mark.slow
@pytest.mark.parametrize("name", CNNS)
def test_trained_zoo_cnn_meets_the_accuracy_bar(name, tmp_path):
    model = trained_model(name)
    graphs = _prepare(model, name, tmp_path)
    for mode in MODES:
        for resolver in ("default", "builtin"):
            result = _check(model, graphs, mode, resolver, tmp_path)
            assert result["accuracy"] >= result["torch_accuracy"] - 0.01, (mode, resolver)
            if mode == "fp32":
                assert result["error"] <= 1e-4
            if mode == "int8":
                assert result["agree_ort"] >= 0.99, resolver


@pytest.mark.parametrize("mode", ["fp32", "fp16", "int8"])
def test_zoo_cnn_is_one_xnnpack_partition(untrained, mode, tmp_path):
    _, graphs = untrained
    source = graphs["int8" if mode == "int8" else "fp32"]
    artifact = TARGET.lower(source, mode, tmp_path, TfliteOptions())
    assert TARGET.open_runner(artifact.path, 1, TfliteOptions()).delegated_ops() == 1


def test_resnet_as_strided_flatten_keeps_the_dynamic_batch(tmp_path):
    torch.manual_seed(0)
    graphs = _prepare(build_model("resnet").eval(), "resnet", tmp_path)
    for mode in ("fp32", "int8"):
        artifact = TARGET.lower(graphs[mode], mode, tmp_path, TfliteOptions())
        assert any("batch stays dynamic" in note for note in artifact.info["notes"])
        assert artifact.info["op_counts"]["RESHAPE"] == 1
        runner = TARGET.open_runner(artifact.path)
        assert runner.inputs[0].shape[0] is None
        x = graphs["eval"].inputs["x"][:7]
        assert next(iter(runner.run({runner.inputs[0].name: x}).values())).shape == (7, 10)
