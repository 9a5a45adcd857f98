"""Shared, session-scoped fixtures: one trained digits CNN compressed to int8 by the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressor.budget import Budget
from compressor.pipeline import run_pipeline
from compressor.recipe import Recipe
from compressor.report_model import Report


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
    assert report.passed, report.budgets
    return {**paths, "out": folder / "ops-out", "onnx": folder / "ops-out" / "model.onnx"}


def compress_example(
    example: dict[str, Path], name: str, target: str, **fields: object
) -> tuple[Report, Path]:
    """Run the real pipeline on the example into a fresh folder beside it (5 timed runs); the
    Report and the folder."""
    out = example["model"].parent / name
    recipe = Recipe(
        model=str(example["model"]),
        target=target,
        output=str(out),
        runs=5,
        warmup=1,
        **fields,
    )
    return run_pipeline(recipe), out


def _compress(example: dict[str, Path], name: str, target: str, **fields: object) -> Path:
    """compress_example that must pass; the folder."""
    report, out = compress_example(example, name, target, **fields)
    assert report.passed, report.budgets
    return out


@pytest.fixture(scope="session")
def tflite_int8_run(example: dict[str, Path]) -> tuple[Report, Path]:
    """`compress example -t tflite`'s recipe (int8, calib + eval, the example's budgets) on the
    shared example: the Report and its output folder."""
    return compress_example(
        example,
        "tflite-int8",
        "tflite",
        precision="int8",
        calib=str(example["calib"]),
        eval=str(example["eval"]),
        budget=Budget(max_accuracy_drop=1.0, max_size_mb=1.0),
    )


@pytest.fixture(scope="session")
def tflite_run(example: dict[str, Path]) -> Path:
    """A tflite output folder made with -O resolver=builtin (NCHW I/O, fp32, verified on eval)."""
    return _compress(
        example,
        "ops-tflite",
        "tflite",
        eval=str(example["eval"]),
        target_options={"resolver": "builtin"},
    )


@pytest.fixture(scope="session")
def tensorrt_proxy_run(example: dict[str, Path]) -> Path:
    """A tensorrt output folder in proxy mode (Q/DQ ONNX verified in onnxruntime)."""
    from targets.tensorrt.toolchain import find_toolchain

    if find_toolchain().can_build:
        pytest.skip("a GPU with TensorRT builds a real engine here, so there is no proxy")
    return _compress(
        example,
        "ops-trt",
        "tensorrt",
        precision="int8",
        calib=str(example["calib"]),
        eval=str(example["eval"]),
        target_options={"build_check": False},
    )
