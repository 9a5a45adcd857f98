"""`compress package`: manifest content, byte-identical bundles, and --check catching tampering."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.bundle.archive import check_bundle
from compressor.bundle.manifest import describe_io, guess_layout, recorded_layout
from tests.cli_runner import invoke_cli

PREPROCESS = ["--preprocess", "mean=[0.0]", "--preprocess", "scale=0.0625"]


def package(*args: str) -> tuple[int, str]:
    result = invoke_cli(["package", *args])
    return result.exit_code, result.output


@pytest.fixture()
def out_copy(example_run: dict, tmp_path: Path) -> Path:
    """A private copy of the compress output folder, free to touch and tamper with."""
    return Path(shutil.copytree(example_run["out"], tmp_path / "out"))


def read_bundle(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_same_folder_gives_byte_identical_bundles(out_copy: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.tar.gz", tmp_path / "b" / "bundle.tar.gz"
    assert package(str(out_copy), "-o", str(first), *PREPROCESS)[0] == 0
    for path in out_copy.iterdir():
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (out_copy / "model.onnx").chmod(0o600)
    assert package(str(out_copy), "-o", str(second), *PREPROCESS)[0] == 0
    assert first.read_bytes() == second.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert first.stat().st_mode & 0o777 == 0o666 & ~umask, "bundle gets the usual file mode"
    raw = first.read_bytes()
    assert raw[3] == 0, "gzip header must carry no file name"
    assert raw[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    with tarfile.open(first, "r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "manifest.json",
        "model.onnx",
        "recipe.toml",
        "report.json",
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
        (0, 0, 0, "", "", 0o644)
    }


def test_source_date_epoch_sets_member_mtimes(out_copy: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    bundle = tmp_path / "bundle.tar.gz"
    assert package(str(out_copy), "-o", str(bundle))[0] == 0
    with tarfile.open(bundle, "r:gz") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1_700_000_000}


def test_manifest_describes_model_metrics_hashes_and_recipe(out_copy: Path, tmp_path: Path):
    bundle = tmp_path / "bundle.tar.gz"
    pre = tmp_path / "pre.json"
    pre.write_text(json.dumps({"resize": [8, 8], "color": "grayscale"}))
    code, out = package(str(out_copy), "-o", str(bundle), *PREPROCESS, "--preprocess", str(pre))
    assert code == 0, out
    files = read_bundle(bundle)
    manifest = json.loads(files.pop("manifest.json"))
    report = json.loads((out_copy / "report.json").read_text())
    model = manifest["model"]
    assert (model["file"], model["target"], model["precision"]) == ("model.onnx", "onnx", "int8")
    assert model["runtime"] == "onnxruntime" and model["runtime_version"]
    assert model["metrics_measured_in"] == "onnxruntime"
    assert manifest["notes"] == report["notes"]
    (inp,) = model["inputs"]
    assert inp["shape"][1:] == [1, 8, 8] and inp["dtype"] == "float32"
    assert inp["layout"] == "NCHW" and inp["quantization"] is None
    assert model["outputs"][0]["shape"][1:] == [10]
    assert manifest["preprocessing"] == {
        "mean": [0.0],
        "scale": 0.0625,
        "resize": [8, 8],
        "color": "grayscale",
    }
    assert manifest["budgets"] == report["budgets"] and manifest["passed"] is True
    assert manifest["metrics"]["compressed"] == report["compressed"]
    assert manifest["recipe"]["precision"] == "int8"
    assert manifest["tool"]["name"] == "edge-compressor"
    assert set(manifest["files"]) == set(files)
    for name, content in files.items():
        assert manifest["files"][name]["sha256"] == hashlib.sha256(content).hexdigest()
        assert content == (out_copy / name).read_bytes()


def test_check_passes_then_fails_after_tampering(out_copy: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.tar.gz"
    assert package(str(out_copy), "-o", str(bundle))[0] == 0
    code, out = package("--check", str(bundle))
    assert code == 0 and "3 files match" in out
    files = read_bundle(bundle)
    files["model.onnx"] = files["model.onnx"][:-1] + b"\x00"
    files["extra.bin"] = b"smuggled"
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(tampered, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    code, out = package("--check", str(tampered))
    assert code == 1
    assert "model.onnx: sha256" in out and "does not match" in out
    assert "extra.bin: in the bundle but not listed" in out


def test_check_reports_a_corrupt_bundle(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(gzip.compress(b"not a tar archive at all" * 40))
    code, out = package("--check", str(broken))
    assert code == 1 and "not a readable .tar.gz bundle" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Give either DIR"),
        (["--check", "missing.tar.gz"], "does not exist"),
        (["{dir}", "--preprocess", "nofile.json"], "neither KEY=VALUE nor a JSON file"),
    ],
)
def test_bad_usage_exits_2(out_copy: Path, args: list[str], message: str) -> None:
    code, out = package(*(a.format(dir=out_copy) for a in args))
    assert code == 2 and message in out


def test_folder_without_report_needs_exactly_one_model(example_run: dict, tmp_path: Path):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(example_run["onnx"], folder / "a.onnx")
    bundle = tmp_path / "one.tar.gz"
    code, out = package(str(folder), "-o", str(bundle))
    assert code == 0, out
    manifest = json.loads(read_bundle(bundle)["manifest.json"])
    assert manifest["model"]["precision"] == "int8" and manifest["metrics"] == {}
    shutil.copy(example_run["onnx"], folder / "b.onnx")
    code, out = package(str(folder), "-o", str(tmp_path / "two.tar.gz"))
    assert code == 2 and "2 model files" in out


def test_integer_io_reports_scale_and_zero_point(tmp_path: Path) -> None:
    scale = numpy_helper.from_array(np.array(0.02, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(128, np.uint8), "zero")
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["image", "scale", "zero"], ["y"])],
        "io",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
        [scale, zero],
    )
    path = tmp_path / "io.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), path)
    io_spec = describe_io(path)
    (inp,) = io_spec["inputs"]
    assert inp["dtype"] == "uint8"
    assert inp["quantization"] == {"scale": pytest.approx(0.02), "zero_point": 128}
    assert io_spec["outputs"][0]["quantization"] is None


def test_output_over_a_data_file_is_refused(out_copy: Path, example_run: dict, tmp_path: Path):
    data = tmp_path / "eval.npz"
    shutil.copyfile(example_run["eval"], data)
    before = data.read_bytes()
    code, out = package(str(out_copy), "-o", str(data))
    assert code == 2 and "not a .tar.gz/.tgz file" in out
    assert data.read_bytes() == before
    fake = tmp_path / "fake.tar.gz"
    fake.write_text("not gzip")
    assert package(str(out_copy), "-o", str(fake))[0] == 2
    assert fake.read_text() == "not gzip"


def test_output_over_an_input_of_the_folder_is_refused(out_copy: Path) -> None:
    code, out = package(str(out_copy), "-o", str(out_copy / "report.json"))
    assert code == 2 and "also an input" in out


def test_output_directory_is_a_usage_error(out_copy: Path, tmp_path: Path) -> None:
    code, out = package(str(out_copy), "-o", str(tmp_path))
    assert code == 2 and "is a directory" in out


def test_dot_folder_packages_beside_itself(out_copy: Path, monkeypatch) -> None:
    monkeypatch.chdir(out_copy)
    code, out = package(".")
    assert code == 0, out
    bundle = out_copy.parent / "out.tar.gz"
    assert check_bundle(bundle).ok


def test_layout_is_unknown_rather_than_guessed() -> None:
    assert guess_layout([1, 8, 8, 8]) == "unknown"
    assert guess_layout([None, 1, 8, 8]) == "NCHW"
    assert guess_layout([1, 8, 8, 8], "NHWC") == "NHWC"
    assert guess_layout([1, 10]) == "NC"


def test_recorded_layout_from_report_then_recipe() -> None:
    nchw = {"artifact_info": {"io_layout": "as the ONNX model (NCHW)"}}
    assert recorded_layout(nchw, None) == "NCHW"
    assert recorded_layout({"artifact_info": {"io_layout": "NHWC"}}, None) == "NHWC"
    assert recorded_layout({}, {"target_options": {"nhwc_io": True}}) == "NHWC"
    assert recorded_layout({}, {"target_options": {}}) is None


def test_tflite_manifest_uses_the_reports_layout_and_runtime(tflite_run: Path, tmp_path: Path):
    bundle = tmp_path / "tfl.tar.gz"
    code, out = package(str(tflite_run), "-o", str(bundle))
    assert code == 0, out
    model = check_bundle(bundle).manifest["model"]
    report = json.loads((tflite_run / "report.json").read_text())
    assert model["runtime"] == "litert/builtin"
    assert model["inputs"][0]["layout"] == "NCHW"
    recorded = report["artifact_info"]["runtime"]  # e.g. "litert (ai-edge-litert 2.3.0)"
    assert model["runtime_version"] and model["runtime_version"] in recorded
    assert model["runtime_version_source"] == "report"


def test_runtime_version_falls_back_to_this_machine_and_says_so(out_copy: Path, tmp_path: Path):
    report = json.loads((out_copy / "report.json").read_text())
    report["environment"].pop("onnxruntime")
    report["artifact_info"].pop("runtime", None)
    (out_copy / "report.json").write_text(json.dumps(report))
    bundle = tmp_path / "b.tar.gz"
    assert package(str(out_copy), "-o", str(bundle))[0] == 0
    model = check_bundle(bundle).manifest["model"]
    assert model["runtime_version"] == onnxruntime.__version__
    assert model["runtime_version_source"].startswith("packaging machine")
