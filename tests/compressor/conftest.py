"""Shared, session-scoped fixtures: one trained digits CNN compressed to int8 by the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressor.budget import Budget
from compressor.example import make_example
from compressor.pipeline import run_pipeline
from compressor.recipe import Recipe


@pytest.fixture(scope="session")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """model.pt2 + calib/eval .npz, and out/ with model.onnx (int8), report.json, recipe.toml."""
    folder = tmp_path_factory.mktemp("example")
    paths = make_example(folder, epochs=6)
    recipe = Recipe(
        model=str(paths["model"]),
        target="onnx",
        precision="int8",
        calib=str(paths["calib"]),
        eval=str(paths["eval"]),
        output=str(folder / "out"),
        runs=20,
        warmup=2,
        budget=Budget(max_accuracy_drop=2.0, max_size_mb=1.0),
    )
    report = run_pipeline(recipe)
    assert report["passed"], report["budgets"]
    return {**paths, "out": folder / "out", "onnx": folder / "out" / "model.onnx"}
