"""--target executorch end to end through the CLI: compress --int8 (the verdict in ExecuTorch,
the lowering checked against the Q/DQ graph), package, bench and verify on the .pte; ONNX
input and a missing runtime refused before any work."""

from __future__ import annotations

import importlib.util
import json
import tarfile

import pytest

from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from targets import registry
from targets.executorch import lower as executorch_lower


@pytest.fixture(scope="module")
def int8_run(example, tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("executorch") / "out"
    args = [example["model"], "--target", "executorch", "--int8", "--calib", example["calib"]]
    args += ["--eval", example["eval"], "--runs", "3", "--warmup", "1", "-o", out]
    result = cli(args)
    assert result.exit_code == 0, result.output
    return out


def test_compress_int8_is_judged_in_executorch_and_matches_the_qdq_graph(int8_run):
    report = json.loads((int8_run / "report.json").read_text())
    assert report["passed"] and report["artifact"] == "model.pte"
    assert report["compressed"]["runtime"] == "executorch"
    assert report["fp32_reference"]["runtime"] == "executorch"
    assert report["qdq_reference"]["top1_agreement"] >= 0.99
    info = report["artifact_info"]
    assert info["weights_from_onnx"] >= 2 and info["onnx_ranges_used"] >= 2
    assert info["delegated_ops"]["aten.convolution"] >= 1
    assert "not_delegated_ops" in info
    assert any("XNNPACK" in note for note in report["notes"])


def test_package_bench_and_verify_take_the_pte(int8_run, example, tmp_path, cli):
    bundle = tmp_path / "bundle.tar.gz"
    assert cli(["package", int8_run, "-o", bundle]).exit_code == 0
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["model"]["target"] == "executorch"
    assert manifest["model"]["runtime"] == "executorch"
    assert manifest["model"]["runtime_version"] == "1.5.1"
    bench = cli(["bench", int8_run / "model.pte", "--runs", "3", "--json"])
    assert bench.exit_code == 0, bench.output
    assert "executorch" in bench.output
    verify = [int8_run / "model.pte", "--baseline", example["model"], "--eval", example["eval"]]
    result = cli(["verify", *verify, "--runs", "3", "--warmup", "1"])
    assert result.exit_code == 0, result.output


def test_an_onnx_model_is_refused_before_any_work(example, tmp_path, cli):
    model = load_model(example["model"])
    onnx_model = export_onnx(model, model.inputs, tmp_path / "model.onnx")
    out = tmp_path / "out"
    result = cli([onnx_model, "--target", "executorch", "--eval", example["eval"], "-o", out])
    assert result.exit_code == 2
    assert "starts from torch" in result.output and ".pt2" in result.output
    assert not out.exists()


def test_without_the_extra_the_target_says_how_to_install_it(example, tmp_path, cli, monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "executorch" else real(name, *args)

    monkeypatch.setattr(executorch_lower.importlib.util, "find_spec", find_spec)
    out = tmp_path / "out"
    result = cli([example["model"], "--target", "executorch", "--eval", example["eval"], "-o", out])
    assert result.exit_code == 2
    assert "pip install -e '.[executorch]'" in result.output
    assert not out.exists()
    rows = {name: (ok, why) for name, ok, why in registry.describe_targets()}
    assert rows["executorch"][0] is False and "[executorch]" in rows["executorch"][1]
