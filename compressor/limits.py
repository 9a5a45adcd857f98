"""Ranges of numeric settings (budgets, training, timing), checked before any work starts."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from compressor.errors import DataError, UsageError


@dataclass(frozen=True)
class Range:
    """Allowed values of one setting; an open end excludes its bound."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    unit: str = ""

    def allows(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"within {left}{low}, {high}{right}" + (f" {self.unit}" if self.unit else "")


POSITIVE = Range(0, None, low_open=True)
BUDGET_RANGES = {
    "max_accuracy_drop": Range(0, 100, unit="points"),
    "max_latency_ms": Range(0, None, low_open=True, unit="ms"),
    "max_size_mb": Range(0, None, low_open=True, unit="MB"),
    "min_fidelity": Range(0, 1, low_open=True, unit="(cosine)"),
    "min_sqnr": Range(-200, 200, unit="dB"),
}
REGRESSION_RANGES = {
    "max_accuracy_regression": Range(0, 100, unit="points"),
    "max_latency_regression_pct": Range(0, None, unit="%"),
    "max_size_regression_pct": Range(0, None, unit="%"),
    "max_sqnr_regression_db": Range(0, None, unit="dB"),
}
DISTILL_RANGES = {
    "lr": Range(0, 10, low_open=True),
    "temperature": Range(0, 1000, low_open=True),
    "alpha": Range(0, 1),
}


def check_number(flag: str, value: object, allowed: Range | None = None) -> None:
    """Refuse NaN, infinities and values outside `allowed`, naming the flag."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value):
        raise UsageError(f"{flag} {value}: give a finite number.")
    if allowed is not None and not allowed.allows(value):
        raise UsageError(f"{flag} {value:g} is out of range: it must be {allowed.describe()}.")


def check_fields(config: object, ranges: dict[str, Range], prefix: str = "--") -> None:
    """Every numeric field of a config dataclass is finite, and in range where one is listed."""
    for f in dataclasses.fields(config):
        flag = prefix + f.name.replace("_", "-")
        check_number(flag, getattr(config, f.name), ranges.get(f.name))


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
