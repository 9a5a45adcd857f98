"""`compress debug` names the layer int8 breaks: conv1 of the x1000-channel CNN, channel 0."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # train on one thread


def test_debug_names_conv1_channel_0_at_every_stage(scaled_cnn, cnn_files, tmp_path, cli):
    args = ["debug", scaled_cnn, "--calib", cnn_files["calib.npz"], "--calib-samples", "128"]
    args += ["--json", tmp_path / "debug.json", "--html", tmp_path / "debug.html"]
    result = cli(args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "debug.json").read_text())
    worst = report["layers"][0]
    assert worst["module"] == "features.0" and worst["node"].startswith("node_Conv")
    assert worst["outlier_channels"][0]["channel"] == 0
    assert worst["outlier_channels"][0]["x_median"] > 100
    assert worst["median_channel_sqnr_db"] < 5 < 20 < worst["sqnr_db"]  # hidden tensor-wide
    assert worst["qdq"]["median_channel_sqnr_db"] < 5 < 20 < worst["qdq_sqnr_db"]
    assert worst["qdq"]["widest_channel"] == 0 and "outlier channel 0" in worst["fix"]
    assert all(row["median_channel_sqnr_db"] > 30 for row in report["layers"][1:])
    assert all(row["artifact"] is None for row in report["layers"])
    assert any("artifact is the Q/DQ ONNX itself" in note for note in report["notes"])
    stages = {(s["stage"], s["against"]): s for s in report["stages"]}
    assert stages[("onnx fp32", "torch")]["sqnr_db"] > 60  # export is exact
    assert stages[("onnx q/dq", "onnx fp32")]["sqnr_db"] < 10  # int8 breaks here
    assert "features.0" in result.output and "outlier channel 0" in " ".join(result.output.split())
    page = (tmp_path / "debug.html").read_text()
    assert "<svg" in page and "features.0" in page


def test_debug_on_tflite_compares_the_artifact(cnn_files, tmp_path, cli):
    args = ["debug", cnn_files["model.pt2"], "--calib", cnn_files["calib.npz"], "--target"]
    args += ["tflite", "--calib-samples", "64", "--json", tmp_path / "d.json"]
    result = cli(args)
    assert result.exit_code == 0, result.output
    stages = json.loads((tmp_path / "d.json").read_text())["stages"]
    artifact = [
        s for s in stages if s["stage"] == "tflite artifact" and s["against"] == "onnx q/dq"
    ]
    assert artifact and artifact[0]["cosine"] > 0.99
    layers = json.loads((tmp_path / "d.json").read_text())["layers"]
    assert all(row["artifact"]["sqnr_db"] > 20 for row in layers)  # a healthy CNN, every layer


def test_debug_follows_conv1_channel_0_into_the_tflite_file(scaled_cnn, cnn_files, tmp_path, cli):
    args = ["debug", scaled_cnn, "--calib", cnn_files["calib.npz"], "--calib-samples", "128"]
    args += ["--target", "tflite", "--precision", "int8", "--json", tmp_path / "d.json"]
    args += ["--html", tmp_path / "d.html"]
    result = cli(args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d.json").read_text())
    worst = report["layers"][0]
    assert worst["module"] == "features.0" and worst["outlier_channels"][0]["channel"] == 0
    for stage in ("qdq", "artifact"):  # channel 0 dominates, the other channels collapse
        assert worst[stage]["widest_channel"] == 0 and worst[stage]["widest_x_median"] > 100
        assert worst[stage]["median_channel_sqnr_db"] < 5 < 20 < worst[stage]["sqnr_db"]
    assert worst["artifact"]["op"].endswith("CONV_2D")
    ops = [row["artifact"]["op"] for row in report["layers"]]
    assert len(set(ops)) == len(ops) and all(op.startswith("op ") for op in ops)
    for row in report["layers"]:  # the file computes what the Q/DQ graph does, layer by layer
        assert abs(row["artifact"]["sqnr_db"] - row["qdq"]["sqnr_db"]) < 1, row
    said = " ".join(result.output.split())
    sentence = r"in the tflite artifact: op \d+ CONV_2D, median channel SQNR -?\d\.\d dB, "
    assert re.search(sentence + r"widest channel 0\b", said), said
    assert "artifact.op" in (tmp_path / "d.html").read_text()


def test_debug_on_tensorrt_says_what_its_artifact_stage_holds(cnn_files, tmp_path, cli):
    from targets.tensorrt.toolchain import find_toolchain

    args = ["debug", cnn_files["model.pt2"], "--calib", cnn_files["calib.npz"], "--target"]
    args += ["tensorrt", "--calib-samples", "32", "--json", tmp_path / "d.json"]
    result = cli(args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d.json").read_text())
    assert all(row["artifact"] is None for row in report["layers"])  # nothing made up
    note = report["notes"][-1]
    if find_toolchain().can_build:  # an engine exists, but its layers are not traced yet
        assert "per-layer tensors of this artifact are not traced" in note
    else:
        assert "only as a proxy" in note and "No TensorRT engine was built here" in note


def test_debug_refuses_outputs_that_would_overwrite_its_inputs_before_any_work(
    cnn_files, tmp_path, cli
):
    model = tmp_path / "m.pt2"
    model.write_bytes(Path(cnn_files["model.pt2"]).read_bytes())
    before = model.read_bytes()
    base = ["debug", model, "--calib", cnn_files["calib.npz"]]
    for extra in (["--json", model], ["--html", cnn_files["calib.npz"]], ["--json", tmp_path]):
        result = cli(base + extra)
        assert result.exit_code == 2, result.output
    assert model.read_bytes() == before
    for bad in (["--top", "0"], ["--calib-samples", "0"]):
        assert cli(base + bad).exit_code == 2
