"""--auto measured in the target's runtime: LiteRT trials for tflite, per-block latency probes,
slower-in-int8 blocks left float, fp16 fallback blocks replayed from the recipe.

Decisions are asserted against the numbers the run measured, never against wall time.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from compressor.recipe import load_recipe
from compressor.tuning.block_latency import LATENCY_MARGIN, BlockTiming, slower_in_int8
from compressor.tuning.fallback import fallback_precision, mark_fp16
from compressor.tuning.search import choose_trial
from targets.base import TensorSpec
from targets.registry import get_target
from tests.compressor.passes.int8_models import export_module

pytestmark = pytest.mark.usefixtures("one_thread")  # train on one thread

pytest.importorskip("ai_edge_litert")


def _tuning(folder) -> dict:
    return json.loads((folder / "report.json").read_text())["passes"]["int8"]["tuning"]


def test_x1000_auto_on_tflite_is_judged_in_litert_and_replays_fp16(
    scaled_cnn, cnn_files, tmp_path, cli
):
    args = [scaled_cnn, "--int8", "--target", "tflite", "--calib", cnn_files["calib.npz"]]
    args += ["--eval", cnn_files["eval.npz"], "--max-accuracy-drop", "1", "--auto"]
    args += ["--no-equalize", "--calibration", "minmax"]  # equalization alone repairs it
    result = cli(args + ["--tune-trials", "6", "--runs", "5", "-o", tmp_path / "auto"])
    assert result.exit_code == 0, result.output
    tuning = _tuning(tmp_path / "auto")
    assert tuning["runtime"].startswith("litert") and tuning["proxy"] is False
    assert "proxy" not in tuning["latency_runtime"]
    assert tuning["trials"][0]["passed"] is False  # plain int8 fails in LiteRT too
    chosen = tuning["trials"][tuning["chosen"]]
    assert chosen["passed"] and chosen["accuracy_drop"] <= 1
    # tflite declares fp16: the chosen plan was tried with fp16 weights in its float blocks,
    # which keep accuracy and make a smaller .tflite than the fp32 twin
    assert tuning["fallback_precision"] == "fp16"
    fp32_twin = [t for t in tuning["trials"] if t["plan"] and t["fallback"] == "fp32"][-1]
    fp16 = [t for t in tuning["trials"] if t["fallback"] == "fp16"]
    assert len(fp16) == 1 and fp16[0]["plan"] == fp32_twin["plan"] and fp16[0]["passed"]
    assert fp16[0]["size_bytes"] < fp32_twin["size_bytes"]

    recipe = load_recipe(tmp_path / "auto" / "recipe.toml")
    assert list(recipe.int8_fp16) == tuning["fp16_nodes"]
    if not recipe.int8_fp16:  # fp32 twin chosen (fp16 measured slower): replay fp16 anyway
        conv = [n for n in fp16[0]["plan"] if n.startswith("node_")]
        recipe = dataclasses.replace(recipe, int8_fp16=tuple(conv))
    (tmp_path / "fp16.toml").write_text(recipe.to_toml())
    replay = cli(["--recipe", tmp_path / "fp16.toml", "-o", tmp_path / "replay"])
    assert replay.exit_code == 0, replay.output
    report = json.loads((tmp_path / "replay" / "report.json").read_text())
    assert "tuning" not in report["passes"]["int8"]
    assert report["passes"]["int8"]["fp16_nodes"] == list(recipe.int8_fp16)
    assert report["baseline"]["accuracy"] - report["compressed"]["accuracy"] <= 0.01
    assert report["artifact_info"]["op_counts"]["DEQUANTIZE"] >= 2  # fp16 weight and bias


class SiluUpsample(nn.Module):
    """A conv, SiLU and nearest upsampling on a wide tensor: elementwise work whose int8 form
    is Q/DQ reformatting around cheap ops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y = nn.functional.interpolate(y * torch.sigmoid(y), scale_factor=2.0, mode="nearest")
        return self.head(y).mean((2, 3))


@pytest.fixture(scope="module")
def silu_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("silu")
    torch.manual_seed(0)
    model = export_module(SiluUpsample(), [TensorSpec("x", ("batch", 3, 32, 32))], folder)
    x = np.random.default_rng(0).standard_normal((48, 3, 32, 32)).astype(np.float32)
    np.savez(folder / "calib.npz", x=x)
    return {"model": model, "calib": folder / "calib.npz"}


@pytest.mark.parametrize("target", ["onnx", "tensorrt"])
def test_latency_objective_leaves_measured_slow_blocks_float(silu_files, target, tmp_path, cli):
    args = [silu_files["model"], "--int8", "--target", target, "--calib", silu_files["calib"]]
    args += ["--auto", "--tune-objective", "latency", "--runs", "5", "-o", tmp_path]
    result = cli(args)
    assert result.exit_code == 0, result.output
    tuning = _tuning(tmp_path)
    assert tuning["objective"] == "latency" and tuning["block_timings"]
    measured = [
        BlockTiming(b["tensor"], b["int8_ms"], b["float_ms"]) for b in tuning["block_timings"]
    ]
    assert tuning["slower_in_int8"] == sorted(slower_in_int8(measured))
    chosen = tuning["trials"][tuning["chosen"]]
    if chosen["passed"]:
        assert set(tuning["slower_in_int8"]) <= set(chosen["plan"])
    assert tuning["proxy"] is (target == "tensorrt")
    assert ("proxy" in tuning["latency_runtime"]) is (target == "tensorrt")
    assert load_recipe(tmp_path / "recipe.toml").tune_objective == "latency"


def test_decisions_follow_measured_timings():
    timings = [BlockTiming("slow", 1.0, 0.5), BlockTiming("fast", 1.0, 1.6)]
    timings.append(BlockTiming("noise", 1.0, 1.0 - LATENCY_MARGIN / 2))
    assert slower_in_int8(timings) == ["slow"]

    def trial(n, plan, speed, fallback="fp32", passed=True, size=100):
        return {"trial": n, "plan": plan, "float_blocks": len(plan), "latency_vs_fp32": speed,
                "fallback": fallback, "passed": passed, "cosine": 1.0, "size_bytes": size}  # fmt: skip

    trials = [trial(0, [], 0.9), trial(1, ["slow"], 0.95), trial(2, ["slow", "x"], 0.7)]
    assert choose_trial(trials, [], "accuracy")["trial"] == 0  # fewest float blocks
    assert choose_trial(trials, ["slow"], "accuracy")["trial"] == 1  # slow block kept float
    assert choose_trial(trials, ["slow"], "latency")["trial"] == 2  # fastest that keeps it
    twin = trial(3, ["slow"], 0.95 * (1 + LATENCY_MARGIN / 2), "fp16", size=60)
    assert choose_trial([*trials, twin], ["slow"], "accuracy")["trial"] == 3
    slower_twin = {**twin, "latency_vs_fp32": 0.95 * (1 + 2 * LATENCY_MARGIN)}
    assert choose_trial([*trials, slower_twin], ["slow"], "accuracy")["trial"] == 1
    failing = [trial(0, [], 0.5, passed=False), trial(1, ["slow"], 0.6, passed=False)]
    failing[1]["cosine"] = 0.5
    assert choose_trial(failing, ["slow"])["trial"] == 0  # best quality when none passes


def test_fp16_fallback_weights_and_targets(silu_files, tmp_path):
    assert [fallback_precision(get_target(t)) for t in ("onnx", "tflite", "tensorrt")] == [
        "fp32",
        "fp16",
        "fp16",
    ]
    path = tmp_path / "m.onnx"
    path.write_bytes(silu_files["model"].read_bytes())
    conv = next(n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv")
    assert mark_fp16(path, (conv, "no_such_node")) == [conv]
    model = onnx.load(str(path))
    halves = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) == 2  # weight and bias
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    run = lambda p: ort.InferenceSession(str(p)).run(None, {"x": x})[0]  # noqa: E731
    assert np.allclose(run(path), run(silu_files["model"]), atol=1e-2)
    tflite = get_target("tflite")
    artifact = tflite.lower(path, "fp32", tmp_path, None)
    assert artifact.info["op_counts"]["DEQUANTIZE"] == 2  # fp16 weight and bias, read as float
    out = tflite.open_runner(artifact.path).run({"x": x})
    assert np.allclose(next(iter(out.values())), run(path), atol=1e-4)
