"""SIGTERM and SIGHUP clean up like Ctrl-C: no staging folder left, earlier outputs intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_runner import work_bound_s
from tests.hostile.cli_harness import run_cli, snapshot


def _start(digits: dict[str, Path], out: Path) -> subprocess.Popen:
    args = [digits["model"], "--eval", digits["eval"], "--runs", "5000", "--warmup", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "compressor", *map(str, args), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )


def _wait_for_stage(folder: Path, proc: subprocess.Popen, timeout: float = work_bound_s()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(folder.rglob(".compress-stage-*")):
            time.sleep(0.5)  # inside the staged work, not at its first line
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the run never staged its outputs: {proc.communicate()[0].decode()[-2000:]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_termination_signals_leave_no_staging_and_keep_earlier_outputs(digits, tmp_path, signum):
    out = tmp_path / "out"
    first = run_cli(
        digits["model"], "--no-default-floor", "--runs", "3", "--warmup", "1", "-o", out
    )
    assert first.exit_code == 0, first.output
    before = snapshot(tmp_path)
    proc = _start(digits, out)
    _wait_for_stage(tmp_path, proc)
    proc.send_signal(signum)
    output = proc.communicate(timeout=work_bound_s())[0].decode()
    assert proc.returncode == 128 + signum, output
    assert "interrupted" in output and "Traceback" not in output
    assert not list(tmp_path.rglob(".compress-stage-*"))
    assert snapshot(tmp_path) == before
    rerun = run_cli(
        digits["model"], "--no-default-floor", "--runs", "3", "--warmup", "1", "-o", out
    )
    assert rerun.exit_code == 0, rerun.output
