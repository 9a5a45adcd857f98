"""Shared, session-scoped fixtures: one trained digits CNN compressed to int8 by the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressor.budget import Budget
from compressor.pipeline import run_pipeline
from compressor.recipe import Recipe


@pytest.fixture(scope="session")
def example_run(example: dict[str, Path]) -> dict[str, Path]:
    """The shared example plus out/ with model.onnx (int8), report.json and recipe.toml."""
    folder = example["model"].parent
    paths = example
    recipe = Recipe(
        model=str(paths["model"]),
        target="onnx",
        precision="int8",
        calib=str(paths["calib"]),
        eval=str(paths["eval"]),
        output=str(folder / "ops-out"),
        runs=20,
        warmup=2,
        budget=Budget(max_accuracy_drop=2.0, max_size_mb=1.0),
    )
    report = run_pipeline(recipe)
    assert report["passed"], report["budgets"]
    return {**paths, "out": folder / "ops-out", "onnx": folder / "ops-out" / "model.onnx"}
