"""The sandboxed loader (foundation/sandbox.py, compressor/trust/pt2_child.py): what it enforces on
this machine, measured by a child that tries what a payload would, and that a payload slipping
past the archive scan is caught in the child, not run in this process."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from foundation.errors import UnsafeModelError
from foundation.sandbox import Limits, SandboxFailure, run_isolated

PROBE = "tests.hostile.sandbox_probe"


@pytest.fixture()
def listener():
    """A TCP port on 127.0.0.1 that records whether anyone connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    yield server
    server.close()


def _connected(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
        return True
    except BlockingIOError:
        return False


def test_the_child_writes_reads_and_connects_only_where_allowed(tmp_path, listener):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    request = {
        "action": "probe",
        "outside": str(tmp_path / "escaped.txt"),
        "secret": str(secret),
        "port": listener.getsockname()[1],
        "parent": os.getpid(),
    }
    found = run_isolated(PROBE, {}, request, Limits(seconds=60))["result"]
    layers = " ".join(found["layers"])
    assert "limits" in layers and found["write_inside"] == "ok"
    assert "network namespace" in layers or "landlock" in layers, layers
    assert found["connect"] != "ok" and not _connected(listener)
    if "landlock" in layers:
        assert "Permission" in found["write_outside"] and "Permission" in found["read_secret"]
        assert "Permission" in found["parent_environ"]
    if "no signals out" in layers:
        assert found["signal_parent"] != "ok"
    assert not (tmp_path / "escaped.txt").exists()


def test_a_child_past_its_time_is_killed_with_a_clear_message(tmp_path):
    with pytest.raises(SandboxFailure, match="ran past its 3 s limit"):
        run_isolated(PROBE, {}, {"action": "sleep"}, Limits(seconds=3))


def test_a_child_past_its_memory_limit_fails_cleanly(tmp_path):
    limits = Limits(seconds=60, memory_bytes=1 << 30)
    with pytest.raises(SandboxFailure, match="MemoryError"):
        run_isolated(PROBE, {}, {"action": "memory", "bytes": 2 << 30}, limits)


def test_a_payload_past_the_scan_is_stopped_in_the_child(digits, tmp_path):
    """Skip the archive scan on purpose: the child's audit hook ends the load at os.system,
    and Landlock keeps it from writing the marker even if it got further."""
    from compressor.trust.pt2_child import load_checked
    from tests.hostile.archives import symbolic_size_payload

    marker = tmp_path / "payload-ran"
    evil = symbolic_size_payload(digits["model"], tmp_path / "evil.pt2", marker)
    with pytest.raises(UnsafeModelError, match="os.system"):
        load_checked(evil, evil.read_bytes())
    assert not marker.exists()


def test_a_real_export_loads_in_the_child_and_hands_back_plain_specs(digits):
    from compressor.trust.pt2_child import _load_isolated

    found = _load_isolated(Path(digits["model"]), Path(digits["model"]).read_bytes(), Limits())
    assert "network namespace" in " ".join(found["layers"]) or "landlock" in found["layers"][-1]
    assert [name for name, _, _ in found["inputs"]] == ["x"]
    name, shape, dtype = found["inputs"][0]
    assert len(shape) == 4 and isinstance(shape[0], str) and dtype == "torch.float32"


@pytest.mark.parametrize(
    ("result", "plain"),
    [
        ({"inputs": [["x", ["s77", 1, 8, 8], "torch.float32"]], "layers": ["limits"]}, True),
        ({"inputs": [["x", ["s" * 300], "f"]], "layers": []}, False),
        ({"inputs": [], "layers": ["secret\nline"]}, False),
        ({"inputs": [], "layers": ["x"] * 11}, False),
        ({"inputs": [["x", [1.5], "f"]], "layers": []}, False),
        ({"inputs": [], "layers": [], "extra": 1}, False),
    ],
)
def test_the_childs_answer_is_checked_as_untrusted(result, plain):
    """A payload that ran in the child could write reply.json: only short plain data passes."""
    from compressor.trust.pt2_child import _plain_result

    assert _plain_result(result) is plain
