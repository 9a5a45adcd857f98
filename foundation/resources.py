"""How much of this machine one run may ask for: threads and the bytes of one tensor, checked
from declared sizes before anything is allocated."""

from __future__ import annotations

import math
import os

from foundation.errors import DataError, UsageError


def max_threads() -> int:
    """The most intra-op threads worth asking for: 4 per core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 4 * (cores or 1)


def check_threads(threads: int) -> None:
    """Thread counts far above the core count only thrash (and can exhaust memory)."""
    if threads > max_threads():
        raise UsageError(
            f"--threads {threads} is more than 4× the {max_threads() // 4} cores available; "
            f"use at most {max_threads()} (the core count is usually fastest)."
        )


def memory_budget_bytes() -> int:
    """The most one input tensor may take: a quarter of physical memory."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    return max(total // 4, 1 << 20)


def check_tensor_bytes(what: str, shape: tuple[int, ...], itemsize: int, hint: str) -> None:
    """Refuse, from the declared shape alone, a tensor that could not fit in memory."""
    count = math.prod(int(d) for d in shape)
    if count * itemsize > memory_budget_bytes():
        size = count * itemsize / 2**30
        raise DataError(
            f"{what} of shape {list(shape)} would take {size:,.1f} GiB, more than the "
            f"{memory_budget_bytes() / 2**30:.1f} GiB allowed per tensor on this machine. {hint}"
        )
