"""Sweep fixtures: sweep files over the session's trained digits CNN, and `compress sweep` run
as a real subprocess (so Ray workers, kills and exit codes are real), bounded by its work."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_runner import work_bound_s

ROOT = Path(__file__).resolve().parents[3]
FAST = "runs = 5\nwarmup = 1\n"


@pytest.fixture
def make_sweep(example: dict[str, Path], tmp_path: Path) -> Callable[..., Path]:
    """make_sweep(body, defaults=FAST): a sweep.toml with one model, `digits`, plus body."""

    def make(body: str, defaults: str = FAST, name: str = "sweep.toml") -> Path:
        path = tmp_path / name
        path.write_text(
            f"[defaults]\n{defaults}\n"
            "[[models]]\n"
            'name = "digits"\n'
            f'model = "{example["model"]}"\n'
            f'calib = "{example["calib"]}"\n'
            f'eval = "{example["eval"]}"\n\n' + body
        )
        return path

    return make


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """run_cli(args, env=None, runs=1): `python -m compressor ARGS` from this checkout, given
    the hang guard of `runs` compress runs (a sweep: its jobs and retries, plus one for Ray)."""

    def run(args: list[str], env: dict | None = None, runs: int = 1):
        full_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "RAY_USAGE_STATS_ENABLED": "0",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-m", "compressor", *args],
            capture_output=True,
            text=True,
            timeout=work_bound_s(runs),
            env=full_env,
            cwd=ROOT,
        )

    return run
