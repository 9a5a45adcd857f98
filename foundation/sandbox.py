"""Run a Python module on untrusted input in a locked-down child process.

The parent (`run_isolated`) starts `python -m MODULE WORKDIR` with a scrubbed environment and a
wall-clock timeout; the child calls `lock_down(WORKDIR)` before it reads the input. Layers, each
applied where this machine allows it and reported by name: resource limits (address space, CPU
time, file size, open files), a new network namespace (no interface but a downed loopback),
Landlock (writes only inside WORKDIR, reads only the Python installation and system libraries,
no TCP, no signals or abstract sockets outside the sandbox) and an unprivileged user. Python has
no sandbox of its own and the libraries on PyPI are unmaintained or pre-release, so the kernel's
facilities are called directly (ctypes): unshare(2), landlock(7), setrlimit(2).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REQUEST, REPLY = "request.json", "reply.json"
_MAX_REPLY = 16 << 20
_CLONE_NEWNET, _CLONE_NEWUSER = 0x40000000, 0x10000000
_NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    """Resource limits of the child; the wall-clock timeout is enforced by the parent."""

    seconds: int = 300
    memory_bytes: int = 16 << 30
    file_bytes: int = 1 << 30
    open_files: int = 256


class SandboxFailure(Exception):
    """The child refused its input (`refused`), failed, died or ran out of time."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def run_isolated(module: str, files: dict[str, bytes], request: dict, limits: Limits) -> dict:
    """Run `python -m module WORKDIR` locked down; return its reply.json (plain JSON).

    `files` are written into WORKDIR for the child; WORKDIR is removed afterwards.
    """
    work = Path(tempfile.mkdtemp(prefix="compress-sandbox-"))
    try:
        for name, data in files.items():
            (work / name).write_bytes(data)
        (work / REQUEST).write_text(json.dumps({**request, "limits": limits.__dict__}))
        proc = _start(module, work, limits)
        return _reply(proc, work, limits)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _start(module: str, work: Path, limits: Limits) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(_import_roots()),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    command = [sys.executable, "-s", "-m", module, str(work)]
    try:
        return subprocess.run(
            command,
            env=env,
            cwd=work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=limits.seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SandboxFailure(
            f"the sandboxed process ran past its {limits.seconds} s limit and was killed"
        ) from None


def _import_roots() -> list[str]:
    """This project's folder and the Python installation's import folders (not the current
    folder or others on sys.path: the child may read only what it imports from)."""
    here = str(Path(__file__).resolve().parent.parent)
    prefixes = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    inside = [p for p in sys.path if p.startswith(prefixes) and Path(p).is_dir()]
    return [here, *inside]


def _reply(proc: subprocess.CompletedProcess, work: Path, limits: Limits) -> dict:
    reply_path = work / REPLY
    reply = {}
    if reply_path.is_file() and reply_path.stat().st_size <= _MAX_REPLY:
        try:
            reply = json.loads(reply_path.read_text())
        except ValueError:
            reply = {}
    if proc.returncode == 0 and isinstance(reply, dict) and "result" in reply:
        return reply
    if isinstance(reply, dict) and isinstance(reply.get("refused"), str):
        raise SandboxFailure(reply["refused"], refused=True)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise SandboxFailure(f"the sandboxed process was killed by {name} ({_limit_hint(name)})")
    tail = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
    why = reply.get("error") if isinstance(reply, dict) else None
    raise SandboxFailure(
        f"the sandboxed process failed (exit {proc.returncode}): "
        f"{(why or (tail[-1] if tail else 'no message'))[:300]}"
    )


def _limit_hint(signal_name: str) -> str:
    return {
        "SIGXCPU": "CPU-time limit",
        "SIGXFSZ": "file-size limit",
        "SIGKILL": "out of memory or killed",
        "SIGSEGV": "a crash, possibly its memory limit",
    }.get(signal_name, "a crash")


def lock_down(work: Path, limits: Limits, read_paths: list[str]) -> list[str]:
    """In the child, before reading untrusted input: apply every layer this machine allows and
    return the names of those applied. Raises when none of the isolating layers applies."""
    applied = ["scrubbed environment"]
    applied += _set_limits(limits)
    for layer in (
        _new_network,
        lambda: _landlock(work, read_paths),
        lambda: _drop_user(work, read_paths),
    ):
        name = layer()
        if name:
            applied.append(name)
    if not any(a.startswith(("network namespace", "landlock", "user ")) for a in applied):
        raise SandboxFailure("no isolation (network namespace, Landlock, user) works here")
    return applied


def _set_limits(limits: Limits) -> list[str]:
    import resource  # POSIX only; imported here so that this module imports everywhere

    table = {
        resource.RLIMIT_AS: limits.memory_bytes,
        resource.RLIMIT_CPU: limits.seconds,
        resource.RLIMIT_FSIZE: limits.file_bytes,
        resource.RLIMIT_NOFILE: limits.open_files,
        resource.RLIMIT_CORE: 0,
    }
    for kind, value in table.items():
        resource.setrlimit(kind, (value, value))
    gib = limits.memory_bytes / (1 << 30)
    return [
        f"limits (memory {gib:g} GiB, CPU {limits.seconds} s, files {limits.file_bytes >> 20} MiB)"
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _new_network() -> str | None:
    """A network namespace of its own: no route anywhere, loopback down."""
    unshare = getattr(_libc(), "unshare", None)  # Linux only
    if unshare is None:
        return None
    if unshare(_CLONE_NEWNET) == 0:
        return "network namespace"
    if os.geteuid() != 0 and unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        return "network namespace (user namespace)"
    return None


def network_reachable() -> bool:
    """Whether any interface besides a downed loopback exists (used by tests and checks)."""
    return any(name != "lo" for _, name in socket.if_nameindex())


def _drop_user(work: Path, read_paths: list[str]) -> str | None:
    """setuid(nobody) when root and everything the child reads is readable by others."""
    needed = [Path(p) for p in read_paths if Path(p).exists()]
    if os.geteuid() != 0 or not all(_world_readable(p) for p in needed):
        return None
    os.chown(work, _NOBODY, _NOBODY)
    for path in work.iterdir():
        os.chown(path, _NOBODY, _NOBODY)
    os.setgroups([])
    os.setgid(_NOBODY)
    os.setuid(_NOBODY)
    return "user nobody"


def _world_readable(path: Path) -> bool:
    """Readable (files) or enterable (folders) by others, up to the root."""
    own = 0o005 if path.is_dir() else 0o004
    return path.stat().st_mode & own == own and all(p.stat().st_mode & 0o001 for p in path.parents)


def _landlock(work: Path, read_paths: list[str]) -> str | None:
    from foundation.landlock import restrict

    return restrict(str(work), read_paths)
