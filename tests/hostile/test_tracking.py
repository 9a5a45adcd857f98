"""MLflow tracking: nothing read back from an earlier run carries a file from outside its folder
to the tracking store, a store MLflow refuses is exit 2, and a server that does not answer is
waited for a bounded, stated time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from compressor.report.run_record import load_logged_run
from foundation.errors import UsageError
from tests.cli_runner import work_bound_s
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

pytest.importorskip("mlflow")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    """A secret file and, beside it, a secret folder holding another."""
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "key.pem").write_text("SECRET-KEY")
    path = tmp_path / "secret.txt"
    path.write_text("SECRET-TEXT")
    return path


def run_folder(folder: Path, extra: list[object]) -> Path:
    """An earlier run's folder as compress leaves it, with `extra` as its extra_files."""
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "recipe.toml").write_text('target = "onnx"\n')
    report = {"artifact": "model.onnx", "extra_files": extra, "passed": True}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


@pytest.mark.parametrize(
    "plant",
    ["extra file", "extra folder", "artifact", "report", "inside a folder artifact", "not plain"],
)
def test_a_run_folder_with_links_is_refused_before_logging(tmp_path, secret, plant):
    folder = run_folder(tmp_path / "run", ["extra"])
    private = tmp_path / "private"
    links = {
        "extra file": (folder / "extra", secret),
        "extra folder": (folder / "extra", private),
        "artifact": (folder / "model.onnx", secret),
        "report": (folder / "recipe.toml", secret),
        "inside a folder artifact": (folder / "extra" / "leak", private),
    }
    if plant == "not plain":
        (folder / "report.json").write_text(json.dumps({"artifact": "../secret.txt"}))
    elif plant == "inside a folder artifact":
        (folder / "extra").mkdir()
    if plant in links:
        link, target = links[plant]
        if link.exists():
            link.unlink()
        link.symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link|not a plain"):
        load_logged_run(folder)


def test_a_clean_run_folder_is_logged_whole(tmp_path):
    """The control: every file the report names, plus report.json and recipe.toml."""
    folder = run_folder(tmp_path / "run", ["weights.bin"])
    (folder / "weights.bin").write_bytes(b"w")
    _, files = load_logged_run(folder)
    assert sorted(p.name for p in files) == [
        "model.onnx",
        "recipe.toml",
        "report.json",
        "weights.bin",
    ]


def test_resume_with_tracking_never_logs_linked_secrets(digits, tmp_path, secret, monkeypatch):
    """An earlier sweep's job folder edited to name links to a secret file and folder."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (tmp_path / "store").mkdir()
    sweep, out = tmp_path / "sweep.toml", tmp_path / "out"
    sweep.write_text(
        f"[defaults]\nruns = 2\nwarmup = 1\nbudget = {{ default_floor = false }}\n"
        f"[[models]]\nname = 'm'\nmodel = '{digits['model']}'\n"
        "[grid]\ntargets = ['onnx']\nprecisions = ['fp32']\n"
    )
    first = run_cli("sweep", sweep, "-o", out, "--workers", "1", "--track", "none")
    assert first.exit_code == 0, first.output
    job = out / "m-onnx-fp32"
    report = json.loads((job / "report.json").read_text())
    report["extra_files"] = ["leak.txt", "leakdir"]
    (job / "report.json").write_text(json.dumps(report))
    (job / "leak.txt").symlink_to(secret)
    (job / "leakdir").symlink_to(tmp_path / "private", target_is_directory=True)
    before = snapshot(tmp_path)
    result = run_cli("sweep", sweep, "-o", out, "--workers", "1", "--resume", "--track", "mlflow")
    assert_clean_refusal(result, 2, "symbolic link")
    assert snapshot(tmp_path) == before  # the store was not even opened
    (job / "leak.txt").unlink()
    (job / "leakdir").unlink()
    again = run_cli("sweep", sweep, "-o", out, "--workers", "1", "--resume", "--track", "mlflow")
    assert again.exit_code == 0, again.output  # the control: a clean folder is logged
    logged = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert any(p.name == "model.onnx" for p in logged)
    assert not any(b"SECRET" in p.read_bytes() for p in logged)


def test_a_file_store_uri_is_a_usage_error(digits, tmp_path, monkeypatch):
    """MLflow 3.17+ refuses its old file store; that is the user's URI, not a bug (exit 2)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file://{tmp_path / 'mlruns'}")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    result = run_cli(digits["model"], "-o", tmp_path / "out", "--runs", "2")
    assert_clean_refusal(result, 2, "Cannot track to file://", "--track none")
    assert not (tmp_path / "out").exists()


@pytest.fixture()
def silent_server() -> Iterator[str]:
    """http://127.0.0.1:PORT of a server that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture()
def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("server", ["silent_server", "closed_port"])
def test_an_unreachable_tracking_server_is_waited_for_a_bounded_stated_time(
    digits, tmp_path, request, server
):
    uri = request.getfixturevalue(server)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, "-m", "compressor", str(digits["model"]), "-o", str(tmp_path / "o")]
    # MLflow alone retries for minutes (7 tries, backoff 2, 120 s each): the guard catches that
    done = subprocess.run(
        [*command, "--track-timeout", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=work_bound_s(),
    )
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    assert "Traceback" not in text and f"Waiting up to 2 s for the MLflow server at {uri}" in text
    assert "Cannot track to" in text and not (tmp_path / "o").exists()
