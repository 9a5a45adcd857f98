"""`compress debug` names the layer int8 breaks: conv1 of the x1000-channel CNN, channel 0."""

from __future__ import annotations

import json


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
    assert worst["qdq_sqnr_db"] < 5 and "outlier channel 0" in worst["fix"]
    assert all(row["median_channel_sqnr_db"] > 30 for row in report["layers"][1:])
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
