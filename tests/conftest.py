"""Shared fixtures: a real digits CNN trained once per session, saved in every model format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compressor.model.example import make_example
from tests.cli_runner import invoke_cli

# One intra-op thread: on 2 shared cores torch's thread pool thrashes (28x slower training seen).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """model.pt2 (dynamic batch), calib.npz and eval.npz of a DigitsCNN trained for 6 epochs."""
    return make_example(tmp_path_factory.mktemp("example"), epochs=6)


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
