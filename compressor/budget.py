"""Budgets: limits a compressed model must meet, checked against measured metrics."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


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

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


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


def check_budgets(budget: Budget, baseline: dict, compressed: dict) -> list[BudgetResult]:
    """Compare measured metrics (report 'baseline'/'compressed' sections) against the budget."""
    results = []
    if budget.max_accuracy_drop is not None:
        base, comp = baseline.get("accuracy"), compressed.get("accuracy")
        if base is None or comp is None:
            results.append(
                BudgetResult(
                    "max_accuracy_drop",
                    budget.max_accuracy_drop,
                    None,
                    False,
                    "points",
                    "no labels in the eval data: accuracy cannot be measured; use --min-fidelity",
                )
            )
        else:
            drop = round((base - comp) * 100.0, 4)
            results.append(
                BudgetResult(
                    "max_accuracy_drop",
                    budget.max_accuracy_drop,
                    drop,
                    drop <= budget.max_accuracy_drop,
                    "points",
                )
            )
    if budget.max_latency_ms is not None:
        p50 = compressed["latency_ms"]["p50"]
        results.append(
            BudgetResult(
                "max_latency_ms",
                budget.max_latency_ms,
                p50,
                p50 <= budget.max_latency_ms,
                "ms (p50)",
            )
        )
    if budget.max_size_mb is not None:
        mb = round(compressed["size_bytes"] / 1e6, 6)
        results.append(
            BudgetResult("max_size_mb", budget.max_size_mb, mb, mb <= budget.max_size_mb, "MB")
        )
    if budget.min_fidelity is not None:
        cosine = (compressed.get("fidelity") or {}).get("cosine")
        results.append(
            BudgetResult(
                "min_fidelity",
                budget.min_fidelity,
                cosine,
                cosine is not None and cosine >= budget.min_fidelity,
                "cosine",
            )
        )
    return results
