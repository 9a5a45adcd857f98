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
