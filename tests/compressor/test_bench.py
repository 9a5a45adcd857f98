"""`compress bench`: real runtimes on the example's .pt2 baseline and int8 ONNX artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from compressor.bench import BenchSettings, bench_artifacts, bench_json, column_headers
from compressor.model.example import DigitsCNN
from tests.cli_runner import invoke_cli

STAT_KEYS = {"p50", "p90", "p99", "mean", "std"}


def bench(*args: str) -> tuple[int, str, str]:
    result = invoke_cli(["bench", *args])
    return result.exit_code, result.stdout, result.stderr


def test_json_has_percentiles_throughput_and_settings(example_run: dict) -> None:
    code, out, _ = bench(str(example_run["onnx"]), "--runs", "15", "--warmup", "2", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"settings", "results", "environment", "notes"}
    assert doc["environment"]["int8_host"]["arch"]  # the host's int8 features, always
    assert doc["notes"] == []  # verified (portable) for every CPU, this one included
    assert doc["settings"]["runs"] == 15 and doc["settings"]["interleaved"] is False
    (result,) = doc["results"]
    assert result["runtime"] == "onnxruntime"
    assert set(result["latency_ms"]) == STAT_KEYS
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert result["size_bytes"] == example_run["onnx"].stat().st_size
    assert result["throughput"] == pytest.approx(1000.0 / lat["mean"], rel=0.01)
    assert result["p50_ratio_to_first"] == 1.0


def test_compare_measures_torch_and_onnx_with_ratios_to_the_first(example_run: dict) -> None:
    code, out, _ = bench(
        "--compare", str(example_run["model"]), str(example_run["onnx"]), "--runs", "15", "--json"
    )
    assert code == 0
    first, second = json.loads(out)["results"]
    assert (first["runtime"], second["runtime"]) == ("torch", "onnxruntime")
    assert first["p50_ratio_to_first"] == 1.0 and first["speedup_vs_first"] == 1.0
    ratio = second["latency_ms"]["p50"] / first["latency_ms"]["p50"]
    assert second["p50_ratio_to_first"] == pytest.approx(ratio, rel=0.02)
    assert second["speedup_vs_first"] == pytest.approx(1.0 / ratio, rel=0.02)


def test_table_shows_every_artifact_side_by_side(example_run: dict) -> None:
    code, out, _ = bench(str(example_run["model"]), str(example_run["onnx"]), "--runs", "5")
    assert code == 0
    for text in ("model.pt2", "model.onnx", "p99 (ms)", "throughput", "speed-up vs first"):
        assert text in out


def test_batch_and_data_feed_real_samples(example_run: dict) -> None:
    settings = BenchSettings(runs=10, warmup=1, batch=4, data=str(example_run["eval"]))
    from calibration.loaders import load_dataset

    results = bench_artifacts([example_run["onnx"]], settings, load_dataset(settings.data))
    doc = bench_json(results, settings)
    assert doc["results"][0]["batch"] == 4
    assert doc["settings"]["inputs"] == str(example_run["eval"])
    stats = results[0].latency
    assert stats.throughput == pytest.approx(4 * 1000.0 / stats.mean)


def test_torchscript_needs_an_input_shape(tmp_path: Path) -> None:
    path = tmp_path / "cnn.pt"
    torch.jit.trace(DigitsCNN().eval(), torch.zeros(1, 1, 8, 8)).save(str(path))
    code, _, err = bench(str(path), "--runs", "3")
    assert code == 2 and "--input-shape" in err
    code, out, _ = bench(str(path), "--runs", "3", "--input-shape", "x:1x1x8x8", "--json")
    assert code == 0 and json.loads(out)["results"][0]["runtime"] == "torch"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.onnx"], "does not exist"),
        (["--compare", "{onnx}"], "--compare needs at least two"),
        (["{onnx}", "--runs", "0"], "--runs"),
        ([], "No artifact given"),
    ],
)
def test_bad_usage_exits_2(example_run: dict, args: list[str], message: str) -> None:
    code, _, err = bench(*(a.format(onnx=example_run["onnx"]) for a in args))
    assert code == 2
    assert message in err


def test_unknown_artifact_suffix_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "model.xyz"
    path.write_bytes(b"not a model")
    code, _, err = bench(str(path))
    assert code == 2 and "No available target runs '.xyz'" in err


def test_a_compress_output_folder_means_its_artifact(example_run: dict) -> None:
    code, out, _ = bench(str(example_run["out"]), "--runs", "3", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["results"][0]["artifact"] == str(example_run["onnx"])
    assert doc["environment"]["onnxruntime"]
    code, _, err = bench(str(example_run["out"].parent), "--runs", "3")
    assert code == 2 and "without a report.json" in err


def test_recorded_tflite_resolver_is_used_and_labelled(tflite_run: Path) -> None:
    code, out, _ = bench(str(tflite_run), "--runs", "3", "--json")
    assert code == 0
    assert json.loads(out)["results"][0]["runtime"] == "litert/builtin"
    code, out, _ = bench(str(tflite_run / "model.tflite"), "--runs", "3", "--json")
    assert code == 0 and json.loads(out)["results"][0]["runtime"] == "litert/builtin"


def test_tensorrt_proxy_keeps_proxy_for(tensorrt_proxy_run: Path) -> None:
    code, out, _ = bench(str(tensorrt_proxy_run), "--runs", "3", "--json")
    assert code == 0
    (result,) = json.loads(out)["results"]
    assert result["runtime"] == "onnxruntime" and result["proxy_for"] == "tensorrt"


def test_same_file_names_get_parent_in_their_headers(example_run: dict, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copyfile(example_run["onnx"], tmp_path / name / "model.onnx")
    paths = [example_run["model"], tmp_path / "a" / "model.onnx", tmp_path / "b" / "model.onnx"]
    assert column_headers(paths) == [
        f"{example_run['model'].parent.name}/model.pt2",
        "a/model.onnx",
        "b/model.onnx",
    ]
    assert column_headers([Path("x/m.onnx"), Path("y/m.tflite")]) == ["m.onnx", "m.tflite"]
    code, out, _ = bench(*(str(p) for p in paths[1:]), "--runs", "3")
    assert code == 0 and "a/model.onnx" in out and "b/model.onnx" in out


class _Sliced(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x[:, :4] * 2 + y[:, 1:5]


def test_inputs_the_export_guards_refuse_are_exit_2_not_a_bug(tmp_path: Path) -> None:
    """bench's fixed-seed inputs have batch 1; a .pt2 exported with batch >= 3 guards refuses them."""
    batch = torch.export.Dim("b", min=3, max=64)
    program = torch.export.export(
        _Sliced(),
        (torch.randn(4, 8), torch.randn(4, 9)),
        dynamic_shapes={"x": {0: batch}, "y": {0: batch}},
    )
    torch.export.save(program, tmp_path / "guarded.pt2")
    result = invoke_cli(["bench", str(tmp_path / "guarded.pt2"), "--runs", "2", "--warmup", "1"])
    assert result.exit_code == 2, result.output
    assert "refuses inputs of shape (1, 8), (1, 9)" in result.output
