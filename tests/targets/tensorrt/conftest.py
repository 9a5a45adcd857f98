"""Shared fixtures: zoo models trained briefly, run once through the tensorrt int8 pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.zoo import save_zoo_inputs
from compressor.judging.budget import Budget
from compressor.pipeline.run import run_pipeline
from compressor.recipe import Recipe

# Few epochs keep the suite fast; every model still learns digits well past chance.
TEST_EPOCHS = {"lenet": 12, "resnet": 3, "mobilenet": 4, "transformer": 6}


def write_zoo_inputs(name: str, folder: Path) -> dict[str, Path]:
    """Train the zoo model briefly and write model.pt2 and its .npz splits to folder."""
    return save_zoo_inputs(name, folder, TEST_EPOCHS[name])


@pytest.fixture(scope="session")
def zoo_int8(tmp_path_factory: pytest.TempPathFactory):
    """name -> (output folder, report) of `--target tensorrt --int8`, computed once per name."""
    done: dict[str, tuple[Path, dict]] = {}

    def run(name: str) -> tuple[Path, dict]:
        if name not in done:
            folder = tmp_path_factory.mktemp(f"trt-{name}")
            paths = write_zoo_inputs(name, folder)
            recipe = Recipe(
                model=str(paths["model"]),
                target="tensorrt",
                precision="int8",
                calib=str(paths["calib"]),
                eval=str(paths["eval"]),
                output=str(folder / "out"),
                runs=5,
                warmup=1,
                budget=Budget(max_accuracy_drop=1.0),
            )
            done[name] = (folder / "out", run_pipeline(recipe))
        return done[name]

    return run
