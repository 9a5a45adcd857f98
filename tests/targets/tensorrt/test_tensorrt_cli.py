"""`python -m compressor MODEL --target tensorrt --int8` end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from targets.tensorrt.toolchain import find_toolchain

REPO = Path(__file__).resolve().parents[3]


def test_int8_without_gpu_exits_0_and_says_what_is_proxied(zoo_int8, tmp_path):
    if find_toolchain().can_build:
        pytest.skip("this machine builds real engines, so the proxy path is not taken")
    src = zoo_int8("lenet")[0].parent
    out = tmp_path / "out"
    command = [sys.executable, "-m", "compressor", str(src / "model.pt2"), "--target", "tensorrt"]
    command += ["--int8", "--calib", str(src / "calib.npz"), "--eval", str(src / "eval.npz")]
    command += ["-o", str(out), "--runs", "5", "-O", "batch=1,4,16", "-O", "workspace_mb=256"]
    env = {**os.environ, "COLUMNS": "240"}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "build_engine.py",
        "model.onnx",
        "recipe.toml",
        "report.json",
    ]
    report = json.loads((out / "report.json").read_text())
    notes = "\n".join(report["notes"])
    assert "PROXY for tensorrt" in notes and "No TensorRT engine was built here" in notes
    command_line = "python build_engine.py model.onnx model.engine --fp16 --int8 --workspace-mb 256"
    assert f"{command_line} --batch 1,4,16" in notes
    assert report["compressed"]["proxy_for"] == "tensorrt"
    assert "PROXY for tensorrt; int8 exact: int32 accumulation" in notes  # not this CPU's kernels
    assert report["int8_arithmetic"]["profile"] is None  # TensorRT's sums do not depend on it
    if find_toolchain().rtx is not None:
        assert report["artifact_info"]["build_check"]["built"]
        assert "Build check: tensorrt-rtx" in notes
    else:
        assert "No CPU build check ran" in notes
    for words in ("PROXY for tensorrt", "No TensorRT engine was built here", "build_engine.py"):
        assert words in result.stdout  # the console says it too, not only report.json
    assert 'batch = "1,4,16"' in (out / "recipe.toml").read_text()
