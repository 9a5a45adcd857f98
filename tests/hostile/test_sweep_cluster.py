"""`compress sweep --ray-address` to a cluster that will not let us in: a head that demands a
token we lack, or anything that accepts the connection and then fails it, is one paragraph and
exit 2, never a traceback, and nothing is written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import work_bound_s
from tests.compressor.sweep.test_ray_cluster import ray_head  # noqa: F401 - a fixture
from tests.hostile.cli_harness import snapshot

pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[2]


def run_sweep(tmp_path: Path, model: Path, address: str) -> subprocess.CompletedProcess:
    """`compress sweep` as a subprocess without any Ray token, bounded by its one job."""
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f"[[models]]\nname = 'm'\nmodel = '{model}'\n"
        "[grid]\ntargets = ['onnx']\nprecisions = ['fp32']\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env |= {"PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(tmp_path)}
    # Ray's client waits 5 + 10 + 20 s for a gRPC answer that never comes; 1 + 2 + 4 s gives
    # the same refusal (the tries and the error are unchanged, only the first wait is shorter).
    env["RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S"] = "1"
    command = [sys.executable, "-m", "compressor", "sweep", str(sweep), "-o", str(tmp_path / "o")]
    return subprocess.run(
        [*command, "--ray-address", address],
        env=env,
        capture_output=True,
        text=True,
        timeout=work_bound_s(),
    )


def assert_one_paragraph_refusal(done: subprocess.CompletedProcess, address: str) -> None:
    text = done.stdout + done.stderr
    assert done.returncode == 2, text[-3000:]
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]
    assert f"Could not join the Ray cluster at {address}" in text and "RAY_AUTH_TOKEN" in text


@pytest.fixture()
def mute_listener() -> Iterator[str]:
    """ray://127.0.0.1:PORT of something that accepts connections and never speaks gRPC."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"ray://127.0.0.1:{sock.getsockname()[1]}"


def test_a_connection_error_from_ray_is_a_usage_error(digits, tmp_path, mute_listener):
    (tmp_path / "home").mkdir()
    before = snapshot(tmp_path, skip=tmp_path / "home")
    done = run_sweep(tmp_path / "home", digits["model"], mute_listener)
    assert_one_paragraph_refusal(done, mute_listener)
    assert snapshot(tmp_path, skip=tmp_path / "home") == before
    assert not list((tmp_path / "home" / "o").glob("*/report.json"))


@pytest.mark.slow  # starts a Ray head, then waits out Ray's client timeout (about 30 s)
def test_a_head_demanding_a_token_we_lack_is_a_usage_error(digits, tmp_path, ray_head):  # noqa: F811
    _, client_address, _ = ray_head
    done = run_sweep(tmp_path, digits["model"], client_address)
    assert_one_paragraph_refusal(done, client_address)
    assert not list((tmp_path / "o").glob("*/report.json"))
