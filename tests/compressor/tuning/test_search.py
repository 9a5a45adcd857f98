"""`compress MODEL --int8 --auto`: the x1000-channel CNN fails plain int8 and passes tuned int8.

The digits CNN's first conv (+BN) output channel 0 is scaled x1000 and undone in the next conv:
the same function in float, but one per-tensor int8 scale now squeezes every other channel of
that activation to zero.
"""

from __future__ import annotations

import json

import pytest
import torch

from compressor.judging.budget import Budget
from compressor.recipe import load_recipe
from compressor.tuning.search import meets_budget, pareto_front

pytestmark = pytest.mark.usefixtures("one_thread")  # train on one thread

PLAIN = ["--no-equalize", "--calibration", "minmax"]


def _args(model, cnn_files, out):
    return [
        model,
        "--int8",
        "--calib",
        cnn_files["calib.npz"],
        "--eval",
        cnn_files["eval.npz"],
        "--max-accuracy-drop",
        "1",
        "--runs",
        "10",
        "--warmup",
        "2",
        "-o",
        out,
    ]


def test_x1000_channel_fails_plain_int8_and_passes_auto(scaled_cnn, cnn_files, tmp_path, cli):
    """Plain: minmax ranges without cross-layer equalization (each repairs this model alone:
    below, and the clipped ranges --calibration auto may choose)."""
    plain = cli(_args(scaled_cnn, cnn_files, tmp_path / "plain") + PLAIN)
    assert plain.exit_code == 1, plain.output  # the budget fails
    report = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert report["baseline"]["accuracy"] - report["compressed"]["accuracy"] > 0.01

    tuned = cli(
        _args(scaled_cnn, cnn_files, tmp_path / "auto") + [*PLAIN, "--auto", "--tune-trials", "6"]
    )
    assert tuned.exit_code == 0, tuned.output
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert report["passed"]
    assert report["baseline"]["accuracy"] - report["compressed"]["accuracy"] <= 0.01
    tuning = report["passes"]["int8"]["tuning"]
    assert 2 <= len(tuning["trials"]) <= 6 and tuning["met_budgets"]
    assert tuning["trials"][0]["passed"] is False  # default int8 fails, as above
    chosen = tuning["trials"][tuning["chosen"]]
    assert chosen["passed"] and tuning["chosen"] in tuning["pareto_front"]
    # the worst block is conv1's output (median channel SQNR ~0 dB) read by the second conv
    worst = tuning["sensitivity"][0]
    assert worst["median_channel_sqnr_db"] < 5 and worst["sqnr_db"] > 20
    assert worst["tensor"] in chosen["plan"]
    assert report["passes"]["int8"]["quantize_nodes"] > 0  # the rest stays int8

    recipe = load_recipe(tmp_path / "auto" / "recipe.toml")
    assert recipe.auto is False and list(recipe.int8_plan) == chosen["plan"]
    replay = cli(["--recipe", tmp_path / "auto" / "recipe.toml", "-o", tmp_path / "replay"])
    assert replay.exit_code == 0, replay.output
    replayed = json.loads((tmp_path / "replay" / "report.json").read_text())
    assert "tuning" not in replayed["passes"]["int8"]
    assert replayed["compressed"]["accuracy"] == report["compressed"]["accuracy"]


def test_budget_and_front_rules():
    trials = [
        {"trial": 0, "accuracy_drop": 5.0, "cosine": 0.9, "latency_ms": 1.0, "size_bytes": 10},
        {"trial": 1, "accuracy_drop": 0.5, "cosine": 0.99, "latency_ms": 1.2, "size_bytes": 12},
        {"trial": 2, "accuracy_drop": 0.5, "cosine": 0.99, "latency_ms": 1.5, "size_bytes": 14},
    ]
    assert pareto_front(trials) == [0, 1]
    budget = Budget(max_accuracy_drop=1.0, max_latency_ms=1.3)
    assert [meets_budget(t, budget) for t in trials] == [False, True, False]
    assert meets_budget({"cosine": 0.995, "latency_ms": 1, "size_bytes": 1}, Budget())


def test_auto_needs_int8(cnn_files, tmp_path, cli):
    result = cli([cnn_files["model.pt2"], "--auto", "-o", tmp_path / "o"])
    assert result.exit_code == 2 and "--int8" in result.output


def test_auto_and_debug_on_a_fixed_batch_model(cnn, cnn_files, tmp_path, cli):
    x = torch.zeros(1, 1, 8, 8)
    torch.export.save(torch.export.export(cnn.eval(), (x,)), str(tmp_path / "static.pt2"))
    args = [tmp_path / "static.pt2", "--int8", "--calib", cnn_files["calib.npz"]]
    args += ["--calib-samples", "40", "--auto", "--runs", "3", "-o", tmp_path / "o"]
    result = cli(args)
    assert result.exit_code == 0, result.output
    tuning = json.loads((tmp_path / "o" / "report.json").read_text())["passes"]["int8"]["tuning"]
    assert tuning["trials"][0]["passed"] and "held-back" in tuning["judged_on"]
    debug = ["debug", tmp_path / "static.pt2", "--calib", cnn_files["calib.npz"]]
    result = cli(debug + ["--calib-samples", "24", "--json", tmp_path / "d.json"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "d.json").read_text())["layers"]


def test_x1000_channel_is_repaired_by_default_equalization(scaled_cnn, cnn_files, tmp_path, cli):
    """conv1 → ReLU → conv2 is an equalizable pair: equalization moves the x1000 back into
    conv2's weights and default int8 meets the 1-point budget with every block int8."""
    run = cli(_args(scaled_cnn, cnn_files, tmp_path / "eq"))
    report = json.loads((tmp_path / "eq" / "report.json").read_text())
    step = report["passes"]["int8"]["steps"]["equalize"]
    assert run.exit_code == 0, run.output
    assert step["applied"] and step["pairs"] >= 1
    assert step["held_back_sqnr_db"]["with"] > step["held_back_sqnr_db"]["without"] + 10
    assert report["baseline"]["accuracy"] - report["compressed"]["accuracy"] <= 0.01
