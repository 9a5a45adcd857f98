"""Ranges of numeric settings (budgets, training, timing), checked before any work starts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from foundation.errors import UsageError


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
    "epochs": Range(1, 10_000),  # far past any useful run; 2**63-1 would train forever
    "batch_size": Range(1, 1 << 16),
    "patience": Range(1, None),
    "lr": Range(0, 10, low_open=True),
    "temperature": Range(0, 1000, low_open=True),
    "alpha": Range(0, 1),
}
QAT_RANGES = {
    "epochs": Range(1, 100_000),
    "batch_size": Range(1, 1 << 16),
    "lr": Range(0, 10, low_open=True),
    "time": Range(0, None, low_open=True, unit="s"),
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
