"""The five-runtime table: real zoo jobs become side-by-side cells, and a runtime that cannot
run here (TensorRT without its package and a GPU) gets a reason in its column, never a number."""

from __future__ import annotations

import pytest

from benchmarks.run import prepare_model, run_one
from benchmarks.runtimes import RUNTIMES, SUITE, runtime_status, to_markdown, zoo_rows
from targets.tensorrt.toolchain import find_toolchain

META = {
    "elapsed_s": 1.0,
    "host_isa": "test CPU, x86_64, int8 features: avx2",
    "environment": {"cpu_count": 2},
    "load_before": "1.00, 1.00, 1.00",
    "load_after": "2.00, 1.00, 1.00",
    "runtime_versions": ["onnx: onnxruntime"],
    "imagenet_runs": 5,
}


@pytest.fixture(scope="module")
def lenet_cells(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    work = tmp_path_factory.mktemp("runtimes")
    paths, _ = prepare_model("lenet", 3, work / "lenet")
    return [run_one("lenet", "onnx", "int8", paths, SUITE, work / "out")]


def test_zoo_cells_show_fp32_and_int8_of_the_same_runtime(lenet_cells: list[dict]) -> None:
    cell = lenet_cells[0]
    assert cell["status"] == "ok" and cell["runtime"] == "onnxruntime"
    rows = {measure: cells for _, measure, cells in zoo_rows(lenet_cells)}
    fp32_ms, int8_ms = (float(v) for v in rows["p50 ms fp32 / int8"]["onnx"].split(" / "))
    assert fp32_ms == pytest.approx(cell["fp32_p50_ms"], abs=1e-3)
    assert int8_ms == pytest.approx(cell["p50_ms"], abs=1e-3)
    speed = float(rows["int8 speed × fp32"]["onnx"].rstrip("×"))
    assert speed == pytest.approx(cell["fp32_p50_ms"] / cell["p50_ms"], rel=0.01, abs=0.01)
    assert set(rows["top-1 % fp32 / int8"]) == {"onnx"}


@pytest.mark.skipif(
    find_toolchain().tensorrt is not None and find_toolchain().gpu is not None,
    reason="TensorRT and a GPU are here: its column holds measurements",
)
def test_tensorrt_without_gpu_says_why_and_holds_no_number(lenet_cells: list[dict]) -> None:
    status = runtime_status()
    assert set(status) == set(RUNTIMES)
    assert status["tensorrt"].startswith("not measured: ")
    result = {"meta": META, "runtime_status": status, "zoo": lenet_cells, "imagenet": []}
    table = to_markdown(result | {"lite0": []})
    assert f"TensorRT: {status['tensorrt']}." in table
    lenet_lines = [line for line in table.splitlines() if line.startswith("| lenet |")]
    assert len(lenet_lines) == 3
    for line in lenet_lines:
        assert line.rstrip(" |").endswith("not measured")  # TensorRT, the last column
    assert "load average before 1.00, 1.00, 1.00, after 2.00, 1.00, 1.00" in table
