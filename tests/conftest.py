"""Shared fixtures: a real digits CNN trained once per session, saved in every model format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from compressor.example import make_example
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
def example_module(example: dict[str, Path]) -> torch.nn.Module:
    """The trained example as a plain nn.Module with the same weights."""
    from compressor.example import DigitsCNN

    program = torch.export.load(str(example["model"]))
    module = DigitsCNN()
    module.load_state_dict(program.state_dict)
    return module.eval()


@pytest.fixture(scope="session")
def cli() -> object:
    """`cli(ARGS, code=None)`: run `compress ARGS` in-process (see tests/cli_runner.py)."""
    return invoke_cli
