"""Landlock (Linux ≥ 5.13): restrict this process's own file, TCP and signal access.

Called through the kernel's three system calls (ctypes); the `landlock` package on PyPI is a
pre-release, and the ABI is small and stable (landlock(7)).
"""

from __future__ import annotations

import ctypes
import os
import platform

_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446  # the same numbers on x86_64 and aarch64
_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1, 2, 4, 8
_TRUNCATE, _IOCTL_DEV = 1 << 14, 1 << 15
# Every file-system right each ABI version knows (bits 0-12, then REFER, TRUNCATE, IOCTL_DEV).
_FS_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_ONLY = _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV
_NET_RIGHTS = 3  # BIND_TCP | CONNECT_TCP, ABI 4+
_SCOPES = 3  # ABSTRACT_UNIX_SOCKET | SIGNAL, ABI 6+


class _Ruleset(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 when absent or disabled."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return 0
    version = _libc().syscall(_CREATE, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    return max(int(version), 0)


def restrict(writable: str, readable: list[str]) -> str | None:
    """Allow writes only below `writable` and reads only below `readable`; on ABI 4+ no TCP, on
    ABI 6+ no signals or abstract sockets outside. Returns a description, None if unsupported."""
    abi = abi_version()
    if abi < 1:
        return None
    fs = _FS_RIGHTS[max(v for v in _FS_RIGHTS if v <= abi)]
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = _Ruleset(fs, _NET_RIGHTS if abi >= 4 else 0, _SCOPES if abi >= 6 else 0)
    libc = _libc()
    fd = libc.syscall(_CREATE, ctypes.byref(attr), size, 0)
    if fd < 0:
        return None
    try:
        _add(libc, fd, writable, fs)
        for path in readable:
            _add(libc, fd, path, _EXECUTE | _READ_FILE | _READ_DIR)
        _add(libc, fd, "/dev/null", _READ_FILE | _WRITE_FILE)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return None
        if libc.syscall(_RESTRICT, fd, 0) != 0:
            return None
    finally:
        os.close(fd)
    extra = (", no TCP" if abi >= 4 else "") + (", no signals out" if abi >= 6 else "")
    return f"landlock ABI {abi} (writes only its folder, reads only Python and system files{extra})"


def _add(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist needs no rule
    try:
        if not os.path.isdir(path):
            rights &= _FILE_ONLY
        rule = _PathBeneath(rights, fd)
        libc.syscall(_ADD_RULE, ruleset, _PATH_BENEATH, ctypes.byref(rule), 0)
    finally:
        os.close(fd)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
