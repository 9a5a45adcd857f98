"""Shared fixtures: a real digits CNN trained once per session, saved in every model format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from compressor.model.example import make_example
from tests.cli_runner import invoke_cli

# One intra-op thread: on 2 shared cores torch's thread pool thrashes (28x slower training seen).
torch.set_num_threads(1)
# The same for numpy's BLAS (already loaded by now, so set at run time): two spinning OpenBLAS
# threads made the saturation-safe weights' matrix products 6x slower on a busy machine. The
# environment carries it to the `compress` subprocesses, Ray workers and sandboxes tests start.
threadpool_limits(1, user_api="blas")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """model.pt2 (dynamic batch), calib.npz and eval.npz of a DigitsCNN trained for 6 epochs."""
    return make_example(tmp_path_factory.mktemp("example"), epochs=6)


@pytest.fixture(scope="session")
def example_run(example: dict[str, Path]) -> dict[str, object]:
    """One `compress` run of the example to int8 shared by every test that only reads an int8
    run (onnx, --calib and --eval, --max-accuracy-drop 1 --max-size-mb 1, 20 timed runs): the
    example's paths plus out/ (model.onnx, report.json, recipe.toml), onnx, and the CLI's
    `result`. Each such run costs a calibration per held-back candidate: make it once."""
    out = example["model"].parent / "ops-out"
    flags = ["--target", "onnx", "--int8", "--calib", example["calib"], "--eval", example["eval"]]
    flags += ["--max-accuracy-drop", "1.0", "--max-size-mb", "1", "--runs", "20", "-o", out]
    result = invoke_cli([example["model"], *flags])
    assert result.exit_code == 0, result.output[-3000:]
    return {**example, "out": out, "onnx": out / "model.onnx", "result": result}


@pytest.fixture(scope="session")
def example_module(example: dict[str, Path]) -> torch.nn.Module:
    """The trained example as a plain nn.Module with the same weights."""
    from compressor.model.example import DigitsCNN

    program = torch.export.load(str(example["model"]))
    module = DigitsCNN()
    module.load_state_dict(program.state_dict)
    return module.eval()


@pytest.fixture(scope="session")
def cli() -> object:
    """`cli(ARGS, code=None)`: run `compress ARGS` in-process (see tests/cli_runner.py)."""
    return invoke_cli
