"""`compress sweep --ray-address`: a separate Ray head (`ray start --head` on 127.0.0.1, token
auth on, stopped after) runs the jobs; inputs travel through the object store, outputs come back."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import work_bound_s

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict]]:
    """(GCS address, ray:// client address, env to reach them): a 2-CPU head on 127.0.0.1 in
    its own process group."""
    env = {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # single-node: keep every socket on 127.0.0.1
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "PYTHONPATH": str(ROOT),
        "RAY_USAGE_STATS_ENABLED": "0",
        # the client proxy's per-client server can take over its default 30 s to start on 2
        # loaded cores
        "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "120",
    }
    port, client_port = free_port(), free_port()
    command = ["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1"]
    command += [f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    command += ["--disable-usage-stats", f"--ray-client-server-port={client_port}"]
    log = open(tmp_path_factory.mktemp("head") / "head.log", "w")  # noqa: SIM115 - closed below
    head = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, head)
        _wait_for_port(client_port, head)
        yield f"127.0.0.1:{port}", f"ray://127.0.0.1:{client_port}", env
    finally:
        stop_head(head)
        log.close()


def stop_head(head: subprocess.Popen) -> None:
    """`ray start --block` stops what it started on SIGTERM; then anything left in its process
    group (only processes this head started) is killed."""
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        head.kill()
        head.wait(timeout=10)
    try:
        os.killpg(head.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_for_port(port: int, head: subprocess.Popen, limit_s: float = work_bound_s()) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert head.poll() is None, "ray start --head exited early"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the Ray head did not listen on 127.0.0.1:{port} in {limit_s} s")


def test_sweep_submitted_to_a_running_ray_head(
    ray_head: tuple[str, str, dict], make_sweep, run_cli, example: dict[str, Path], tmp_path: Path
) -> None:
    address, _, env = ray_head
    path = make_sweep('[grid]\ntargets = ["onnx"]\nprecisions = ["fp32", "int8"]\n')
    out = tmp_path / "out"
    result = run_cli(["sweep", str(path), "-o", str(out), "--ray-address", address], env, runs=3)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"].startswith(f"the Ray cluster at {address}")
    assert summary["counts"] == {"passed": 2}
    for job_id in ("digits-onnx-fp32", "digits-onnx-int8"):
        report = json.loads((out / job_id / "report.json").read_text())
        assert (out / job_id / report["artifact"]).is_file()
        assert (out / job_id / "recipe.toml").is_file()
        # the job read its own copy of the shipped model, not the file on this side
        assert report["model"] != str(example["model"]) and "compress-job-" in report["model"]
        assert report["passed"] and report["compressed"]["accuracy"] > 0.9


@pytest.mark.slow  # Ray's client starts a server process per connection: slow and load-sensitive
def test_sweep_submitted_through_the_ray_client(
    ray_head: tuple[str, str, dict], make_sweep, run_cli, tmp_path: Path
) -> None:
    _, client_address, env = ray_head  # ray://, as from a laptop outside the cluster
    path = make_sweep('[grid]\ntargets = ["onnx"]\nprecisions = ["dynamic"]\n')
    out = tmp_path / "out"
    command = ["sweep", str(path), "-o", str(out), "--ray-address", client_address]
    result = run_cli(command, env, runs=2)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "digits-onnx-dynamic" / "report.json").read_text())
    assert report["passed"] and "compress-job-" in report["model"]
