"""The issue's done bar on the zoo CNNs (slow: about a minute): run with `pytest -m slow`."""

from __future__ import annotations

import argparse

import pytest
import torch

from benchmarks.prune_distill import run, summarize


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet", "resnet", "mobilenet"])
def test_half_pruning_plus_distillation_meets_the_bar(name, tmp_path):
    torch.set_num_threads(1)
    config = argparse.Namespace(method="l1", round_to=None, epochs=20, lr=5e-3, runs=200)
    for precision in ("fp32", "int8"):
        row = summarize(name, precision, run(name, tmp_path, precision, config))
        assert row["drop_points"] <= 2.0, row
        assert row["onnx_ratio"] <= 0.6, row
        assert row["ort_speedup"] > 1.0, row
        assert row["top1_distilled"] > row["top1_pruned"] + 0.5, row
