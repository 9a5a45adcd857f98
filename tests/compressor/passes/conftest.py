"""Pass tests train and quantize on one intra-op thread (the shared fixtures live one level up)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread: None) -> None:
    """Every pass test module runs with one_thread (tests/compressor/conftest.py)."""
