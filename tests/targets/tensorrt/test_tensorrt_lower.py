"""Lowering without a GPU: build_engine.py for the device, the TensorRT-RTX build check, notes."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from targets.registry import get_target
from targets.tensorrt.build_engine import build_serialized
from targets.tensorrt.options import TensorRTOptions
from targets.tensorrt.toolchain import find_toolchain

needs_proxy_mode = pytest.mark.skipif(
    find_toolchain().can_build, reason="a GPU with TensorRT is here: lowering builds engines"
)


def test_build_script_is_python_carrying_the_runs_settings(zoo_int8):
    out, report = zoo_int8("lenet")
    text = (out / "build_engine.py").read_text()
    compile(text, "build_engine.py", "exec")
    settings = report.artifact_info["build_settings"]
    assert f"SETTINGS = {settings!r}" in text
    assert settings == {
        "fp16": True,
        "int8": True,
        "workspace_mb": 1024,
        "batch": [1, 1, 32],
        "timing_cache": "",
    }
    for call in (
        "set_flag",
        "set_memory_pool_limit",
        "add_optimization_profile",
        "create_timing_cache",
        "build_serialized_network",
    ):
        assert call in text
    assert "import compressor" not in text and "from targets" not in text  # standalone


def _load_script(path):
    spec = importlib.util.spec_from_file_location("written_build_engine", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_script_builds_an_engine_and_reuses_its_timing_cache(zoo_int8, tmp_path, monkeypatch):
    """The written script's own main(); TensorRT-RTX (same Python API) stands in without TensorRT."""
    rtx = pytest.importorskip("tensorrt_rtx", reason="needs .[tensorrt-check]")
    if find_toolchain().tensorrt is None:
        monkeypatch.setitem(sys.modules, "tensorrt", rtx)
    out, _ = zoo_int8("resnet")
    script = _load_script(out / "build_engine.py")
    cache = tmp_path / "cache" / "timing.cache"
    args = [str(out / "model.onnx"), str(tmp_path / "model.engine"), "--batch", "1,2,8"]
    assert script.main([*args, "--timing-cache", str(cache)]) == 0
    first = cache.stat().st_size
    assert (tmp_path / "model.engine").stat().st_size > 0 and first > 0
    assert script.main([*args, "--timing-cache", str(cache), "--no-fp16"]) == 0
    assert cache.stat().st_size >= first
    assert not list(tmp_path.glob("*.tmp"))


def test_dynamic_dims_beyond_batch_are_reported_not_crashed(tmp_path):
    rtx = pytest.importorskip("tensorrt_rtx", reason="needs .[tensorrt-check]")
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "t", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "t", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx"
    )
    settings = TensorRTOptions().settings("fp32")
    engine, info = build_serialized(rtx, tmp_path / "m.onnx", settings)
    assert engine is None and info["parsed"] and not info["built"]
    assert "beyond the batch" in info["errors"][0]


@needs_proxy_mode
def test_lower_without_build_check_says_so(zoo_int8, tmp_path):
    out, _ = zoo_int8("lenet")
    target = get_target("tensorrt")
    options = target.parse_options({"build_check": "false"})
    artifact = target.lower(out / "model.onnx", "int8", tmp_path, options)
    assert artifact.path == tmp_path / "model.onnx"
    assert [p.name for p in artifact.extra_files] == ["build_engine.py"]
    assert "build_check" not in artifact.info and artifact.info["engine_built"] is False
    assert any("No CPU build check ran (disabled" in n for n in artifact.info["notes"])


@needs_proxy_mode
def test_failed_build_check_is_a_warning_in_the_notes(tmp_path):
    """An op TensorRT cannot parse (a custom-domain op) is flagged, not hidden."""
    pytest.importorskip("tensorrt_rtx", reason="needs .[tensorrt-check]")
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="example.custom")
    graph = helper.make_graph([node], "g", [x], [y])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), tmp_path / "in.onnx")
    (tmp_path / "out").mkdir()
    artifact = get_target("tensorrt").lower(tmp_path / "in.onnx", "fp32", tmp_path / "out", None)
    check = artifact.info["build_check"]
    assert not check["parsed"] and check["errors"]
    assert any(n.startswith("WARNING: build check") for n in artifact.info["notes"])


@pytest.mark.skipif(find_toolchain().tensorrt is not None, reason="TensorRT is installed here")
def test_build_script_without_tensorrt_says_how_to_get_it(zoo_int8, tmp_path):
    import subprocess

    out, _ = zoo_int8("lenet")
    command = [sys.executable, str(out / "build_engine.py"), str(out / "model.onnx"), "e.engine"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "JetPack" in result.stderr and "pip install tensorrt" in result.stderr
    assert not (tmp_path / "e.engine").exists()
