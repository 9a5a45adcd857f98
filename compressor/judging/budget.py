"""Budgets: limits a compressed model must meet, checked against measured metrics."""

from __future__ import annotations

import dataclasses
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
        default=None,
        metadata={
            "help": "Smallest mean per-sample cosine of every output vs the baseline "
            "(replaces the default floor's 0.98)."
        },
    )
    min_sqnr: float | None = field(
        default=None,
        metadata={
            "help": "Smallest mean per-sample SQNR (dB) of every output vs the baseline "
            "(replaces the default floor's 15 dB)."
        },
    )
    max_metric_drop: float | None = field(
        default=None,
        metadata={"help": "Largest drop of the --metric value vs the baseline, in its own units."},
    )
    default_floor: bool = field(
        default=True,
        metadata={"help": "Check the documented default fidelity floor on every output."},
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
    source: str = "flag"  # default (the documented floor), flag or recipe

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "limit": self.limit,
            "value": self.value,
            "passed": self.passed,
            "unit": self.unit,
            "note": self.note,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BudgetResult:
        """One budget row from its report.json form."""
        return cls(**{f: data[f] for f in cls.__dataclass_fields__ if f in data})


def _accuracy_drop(base: dict, comp: dict) -> tuple[float | None, str]:
    if base.get("accuracy") is None or comp.get("accuracy") is None:
        return None, (
            "no labels in the eval data, or a first output that is not [B, classes]: accuracy "
            "cannot be measured; use --min-fidelity or --metric"
        )
    ci = comp.get("accuracy_drop_ci")
    note = (
        ""
        if not ci
        else f"95% CI [{ci[0]:+.2f}, {ci[1]:+.2f}] pts on {comp['eval_samples']} samples"
    )
    return round((base["accuracy"] - comp["accuracy"]) * 100.0, 4), note


def _latency(base: dict, comp: dict) -> tuple[float | None, str]:
    return comp["latency_ms"]["p50"], ""


def _size(base: dict, comp: dict) -> tuple[float | None, str]:
    return round(comp["size_bytes"] / 1e6, 6), ""


def _metric_drop(base: dict, comp: dict) -> tuple[float | None, str]:
    if base.get("metric") is None or comp.get("metric") is None:
        return None, "no --metric measured (it needs --metric and --eval DATA)"
    return round(base["metric"] - comp["metric"], 6), f"--metric {comp.get('metric_name', '')}"


# name -> (measure(baseline, compressed) -> (value, note), unit, True when lower is better)
BUDGET_CHECKS = {
    "max_accuracy_drop": (_accuracy_drop, "points", True),
    "max_latency_ms": (_latency, "ms (p50)", True),
    "max_size_mb": (_size, "MB", True),
    "max_metric_drop": (_metric_drop, "metric units", True),
}


def check_budgets(
    budget: Budget, baseline: dict, compressed: dict, sources: dict[str, str] | None = None
) -> list[BudgetResult]:
    """Compare measured metrics (report 'baseline'/'compressed' sections) against the budget;
    sources says where each limit came from (flag unless told otherwise)."""
    sources = sources or {}
    results = []
    for name, (measure, unit, upper) in BUDGET_CHECKS.items():
        limit = getattr(budget, name)
        if limit is None:
            continue
        value, note = measure(baseline, compressed)
        passed = value is not None and (value <= limit if upper else value >= limit)
        source = sources.get(name, "flag")
        results.append(BudgetResult(name, limit, value, passed, unit, note, source))
    return results


def budget_sources_of(flags: dict[str, str] | None) -> dict[str, str]:
    """Where each budget limit came from: `flag` for those given on the command line, else the
    recipe (a recipe.toml or a Recipe built in code)."""
    return {f.name: "recipe" for f in dataclasses.fields(Budget)} | (flags or {})
