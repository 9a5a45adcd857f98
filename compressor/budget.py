"""Budgets: limits a compressed model must meet, checked against measured metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Budget:
    """Limits; None means unchecked."""

    max_accuracy_drop: float | None = field(
        default=None, metadata={"help": "Largest top-1 drop vs the baseline, in points (1.0 = 1%)."}
    )
    max_latency_ms: float | None = field(
        default=None, metadata={"help": "Largest p50 latency of the artifact, ms, batch 1."}
    )
    max_size_mb: float | None = field(
        default=None, metadata={"help": "Largest artifact size in MB (1e6 bytes)."}
    )
    min_fidelity: float | None = field(
        default=None, metadata={"help": "Smallest cosine similarity of outputs vs the baseline."}
    )


@dataclass(frozen=True)
class BudgetResult:
    """One budget's verdict with the measured value and its limit."""

    name: str
    limit: float
    value: float | None
    passed: bool
    unit: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "limit": self.limit,
            "value": self.value,
            "passed": self.passed,
            "unit": self.unit,
            "note": self.note,
        }


def _accuracy_drop(base: dict, comp: dict) -> tuple[float | None, str]:
    if base.get("accuracy") is None or comp.get("accuracy") is None:
        return None, "no labels in the eval data: accuracy cannot be measured; use --min-fidelity"
    return round((base["accuracy"] - comp["accuracy"]) * 100.0, 4), ""


def _latency(base: dict, comp: dict) -> tuple[float | None, str]:
    return comp["latency_ms"]["p50"], ""


def _size(base: dict, comp: dict) -> tuple[float | None, str]:
    return round(comp["size_bytes"] / 1e6, 6), ""


def _fidelity(base: dict, comp: dict) -> tuple[float | None, str]:
    cosine = (comp.get("fidelity") or {}).get("cosine")
    return cosine, "" if cosine is not None else "no eval outputs to compare"


# name -> (measure(baseline, compressed) -> (value, note), unit, True when lower is better)
BUDGET_CHECKS = {
    "max_accuracy_drop": (_accuracy_drop, "points", True),
    "max_latency_ms": (_latency, "ms (p50)", True),
    "max_size_mb": (_size, "MB", True),
    "min_fidelity": (_fidelity, "cosine", False),
}


def check_budgets(budget: Budget, baseline: dict, compressed: dict) -> list[BudgetResult]:
    """Compare measured metrics (report 'baseline'/'compressed' sections) against the budget."""
    results = []
    for name, (measure, unit, upper) in BUDGET_CHECKS.items():
        limit = getattr(budget, name)
        if limit is None:
            continue
        value, note = measure(baseline, compressed)
        passed = value is not None and (value <= limit if upper else value >= limit)
        results.append(BudgetResult(name, limit, value, passed, unit, note))
    return results
