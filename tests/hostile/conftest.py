"""Fixtures of the bad-input suite."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def digits(example: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """The session's trained example copied into this test's own folder."""
    out = {}
    for key in ("model", "calib", "eval"):
        dst = tmp_path / example[key].name
        dst.write_bytes(example[key].read_bytes())
        out[key] = dst
    return out


@pytest.fixture(scope="session")
def compressed(example: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real compress output folder (fp32 for ONNX Runtime) of the session's example."""
    from compressor.judging.budget import Budget
    from compressor.pipeline.run import run_pipeline
    from compressor.recipe import Recipe

    out = tmp_path_factory.mktemp("hostile-run") / "out"
    recipe = Recipe(
        model=str(example["model"]),
        output=str(out),
        runs=3,
        warmup=1,
        budget=Budget(default_floor=False),  # no data: nothing to compare outputs on
    )
    assert run_pipeline(recipe).passed
    return out
