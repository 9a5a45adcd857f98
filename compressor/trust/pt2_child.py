"""Load an untrusted `.pt2` in a locked-down child process first (foundation/sandbox.py).

The parent sends the archive bytes pt2_scan.py checked; the child locks itself down, watches
for code execution (a Python audit hook: process start, network, native libraries), loads the
program with torch, runs it once on its own sample inputs, and hands back only plain JSON: its
input specs and the sandbox layers applied. The parent loads the same bytes only after this.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from pathlib import Path

from foundation.errors import ModelLoadError, UnsafeModelError
from foundation.sandbox import REPLY, REQUEST, Limits, SandboxFailure, lock_down, run_isolated

ARCHIVE = "model.pt2"
_LOADED: dict[str, dict] = {}  # SHA-256 of archives that loaded cleanly in a sandbox
# Audit events a torch.export load never raises: a payload starting a process, opening a
# socket or loading a native library. Prefix match (os.exec covers os.execve, ...).
_FORBIDDEN_EVENTS = (
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "subprocess.Popen",
    "pty.spawn",
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.getaddrinfo",
    "ctypes.dlopen",
    "webbrowser.open",
)


def load_checked(path: Path, data: bytes, limits: Limits | None = None) -> dict:
    """Load `data` (a checked .pt2) in the sandbox; returns {'inputs': [...], 'layers': [...]}.

    Bytes that already loaded cleanly in this process are not loaded again (kept in memory
    only, by SHA-256: a later call with the same bytes would get the same answer)."""
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _LOADED:
        _LOADED[digest] = _load_isolated(path, data, limits or limits_for(len(data)))
    return _LOADED[digest]


def limits_for(size: int) -> Limits:
    """The defaults, raised for big archives: torch holds about two copies of the weights, and
    reads them at no less than 10 MB/s."""
    base = Limits()
    memory = max(base.memory_bytes, 4 * size + (4 << 30))
    return Limits(seconds=base.seconds + size // 10_000_000, memory_bytes=memory)


def _load_isolated(path: Path, data: bytes, limits: Limits) -> dict:
    try:
        reply = run_isolated(__name__, {ARCHIVE: data}, {}, limits)
    except SandboxFailure as exc:
        if exc.refused:
            raise UnsafeModelError(
                f"Refusing to load '{path}': {exc} Loading it could run code from the file. "
                "If you trust the file, pass --trust-pickle (it lets the file run code)."
            ) from None
        raise ModelLoadError(
            f"Could not load '{path}' in the sandboxed loader: {exc}. The file may be corrupt "
            "or larger than the sandbox allows; if you trust it, --trust-pickle loads it "
            "in this process."
        ) from None
    result = reply["result"]
    if not _plain_result(result):
        raise UnsafeModelError(
            f"Refusing to load '{path}': the sandboxed loader answered with something other "
            "than input specs, so code from the file may have run there. If you trust the "
            "file, pass --trust-pickle (it lets the file run code)."
        )
    return result


def _plain_result(result: object) -> bool:
    """The child's answer is untrusted too: short strings, ints and lists of them only."""
    if not isinstance(result, dict) or set(result) != {"inputs", "layers"}:
        return False
    layers, inputs = result["layers"], result["inputs"]
    if not isinstance(layers, list) or len(layers) > 10 or not all(map(_short, layers)):
        return False
    return isinstance(inputs, list) and all(
        isinstance(i, list)
        and len(i) == 3
        and _short(i[0])
        and _short(i[2])
        and isinstance(i[1], list)
        and all(_short(d) or type(d) is int for d in i[1])
        for i in inputs
    )


def _short(text: object) -> bool:
    return isinstance(text, str) and len(text) <= 200 and text.isprintable()


def _main(work: Path) -> int:
    """The child: lock down, then load and describe the program; reply.json says how it went."""
    request = json.loads((work / REQUEST).read_text())
    limits = Limits(**request["limits"])
    layers = lock_down(work, limits, _read_paths())
    import torch  # after the lock-down: nothing of the file is read before it
    import torch.ao.quantization.fx._decomposed  # noqa: F401  torch's PT2E ops, by name

    data = (work / ARCHIVE).read_bytes()
    sys.addaudithook(lambda event, args: _watch(work, event))
    program = torch.export.load(io.BytesIO(data))
    module = program.module()
    if program.example_inputs is not None:
        args, kwargs = program.example_inputs
        with torch.no_grad():
            module(*args, **kwargs)
    _write(work, {"result": {"inputs": _describe_inputs(program), "layers": layers}})
    return 0


def _describe_inputs(program: object) -> list[list]:
    """[name, shape (ints, symbols as text), dtype] of each user input, as plain JSON."""
    user = set(program.graph_signature.user_inputs)
    described = []
    for node in program.graph.nodes:
        val = node.meta.get("val") if node.op == "placeholder" and node.name in user else None
        if val is not None:
            shape = [d if isinstance(d, int) else str(d) for d in getattr(val, "shape", ())]
            described.append([node.name, shape, str(getattr(val, "dtype", type(val).__name__))])
    return described


def _watch(work: Path, event: str) -> None:
    """The audit hook: a forbidden event ends the child at once with a refusal."""
    if event.startswith(_FORBIDDEN_EVENTS):
        _write(work, {"refused": f"loading it tried to run code (Python audit event '{event}')."})
        os._exit(2)


def _read_paths() -> list[str]:
    """What the child may read: the Python installation, this project, system libraries and its
    own /proc entry (not other processes': the parent's environment stays unread)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *filter(None, sys.path)}
    system = ["/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime", "/sys"]
    system += [f"/proc/{os.getpid()}", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat"]
    return sorted(r for r in roots if Path(r).exists()) + system + ["/dev/urandom"]


def _write(work: Path, reply: dict) -> None:
    (work / REPLY).write_text(json.dumps(reply))


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    try:
        sys.exit(_main(folder))
    except SandboxFailure as exc:
        _write(folder, {"error": str(exc)})
        sys.exit(1)
    except Exception as exc:  # any failure of torch on the file: the parent reports it
        _write(folder, {"error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"})
        sys.exit(1)
