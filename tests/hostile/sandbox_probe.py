"""A child for foundation/sandbox.py's tests: lock down, then try what a payload would try."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from compressor.trust.pt2_child import _read_paths
from foundation.sandbox import REPLY, REQUEST, Limits, lock_down


def _attempt(action) -> str:
    """'ok' if action succeeded, else the error it raised."""
    try:
        action()
        return "ok"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _connect(port: int) -> None:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()


def main(work: Path) -> None:
    request = json.loads((work / REQUEST).read_text())
    layers = lock_down(work, Limits(**request["limits"]), _read_paths())
    if request["action"] == "sleep":
        time.sleep(600)
    if request["action"] == "memory":
        bytearray(request["bytes"])
    result = {
        "layers": layers,
        "write_outside": _attempt(lambda: Path(request["outside"]).write_text("escaped")),
        "read_secret": _attempt(lambda: Path(request["secret"]).read_text()),
        "connect": _attempt(lambda: _connect(request["port"])),
        "signal_parent": _attempt(lambda: os.kill(request["parent"], 0)),
        "parent_environ": _attempt(lambda: Path(f"/proc/{request['parent']}/environ").read_bytes()),
        "write_inside": _attempt(lambda: (work / "scratch").write_text("fine")),
    }
    (work / REPLY).write_text(json.dumps({"result": result}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
