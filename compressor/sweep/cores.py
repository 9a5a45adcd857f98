"""Pin jobs of the embedded local Ray to distinct cores, so jobs timing at once do not share
cores (they still share caches and memory bandwidth). Linux only; elsewhere nothing is pinned."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


class CorePool:
    """The cores of this process's affinity mask, handed out to running jobs."""

    def __init__(self, workers: int) -> None:
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self._free = cores if workers <= len(cores) else []  # oversubscribed: no pinning

    def take(self, count: int) -> tuple[int, ...]:
        """`count` free cores, or () when there are not enough (the job runs unpinned)."""
        if count > len(self._free):
            return ()
        taken, self._free = tuple(self._free[:count]), self._free[count:]
        return taken

    def give(self, cores: tuple[int, ...]) -> None:
        self._free = sorted({*self._free, *cores})


@contextmanager
def pinned(cores: tuple[int, ...]) -> Iterator[None]:
    """Run the block with every thread of this process on `cores` (threads started inside
    inherit it), then restore the old mask; a no-op for ()."""
    if not cores:
        yield
        return
    old = os.sched_getaffinity(0)
    _set_all_threads(set(cores))
    try:
        yield
    finally:
        _set_all_threads(old)


def _set_all_threads(cores: set[int]) -> None:
    """sched_setaffinity applies to one thread: set it for each (thread pools made earlier)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except (ProcessLookupError, PermissionError):
            pass  # a thread that ended meanwhile
