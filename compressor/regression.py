"""Regressions between releases: a new build measured against a stored report.json."""

from __future__ import annotations

from dataclasses import dataclass, field

from compressor.budget import Budget, BudgetResult
from compressor.errors import UsageError


@dataclass(frozen=True)
class Regression:
    """How much worse than a stored report.json a release may get before the check fails."""

    max_accuracy_regression: float | None = field(
        default=None,
        metadata={
            "help": "With --against: largest accuracy loss vs the stored report, points [default: "
            "--max-accuracy-drop, else 1.0]."
        },
    )
    max_latency_regression_pct: float = field(
        default=25.0,
        metadata={"help": "With --against: largest growth (%) of the artifact/baseline p50 ratio."},
    )
    max_size_regression_pct: float = field(
        default=10.0, metadata={"help": "With --against: largest growth (%) of the artifact size."}
    )


def check_regressions(
    reg: Regression, budget: Budget, stored: dict, base: dict, comp: dict
) -> list[BudgetResult]:
    """Accuracy loss, latency growth (relative to the baseline, so machines cancel) and size."""
    old = stored["compressed"]
    results = []
    acc_limit = reg.max_accuracy_regression
    if acc_limit is None:
        acc_limit = budget.max_accuracy_drop if budget.max_accuracy_drop is not None else 1.0
    if old.get("accuracy") is not None:
        now = comp.get("accuracy")
        loss = None if now is None else round((old["accuracy"] - now) * 100.0, 4)
        note = "" if now is not None else "no labelled --eval data: accuracy not measured"
        results.append(
            BudgetResult(
                "max_accuracy_regression",
                acc_limit,
                loss,
                loss is not None and loss <= acc_limit,
                "points",
                note,
            )
        )
    growth, how = _latency_growth(stored, base, comp)
    limit = reg.max_latency_regression_pct
    passed = growth is not None and growth <= limit
    results.append(BudgetResult("max_latency_regression_pct", limit, growth, passed, "%", how))
    limit = reg.max_size_regression_pct
    if not old.get("size_bytes"):
        results.append(BudgetResult("max_size_regression_pct", limit, None, False, "%", UNUSABLE))
    else:
        size_growth = round((comp["size_bytes"] / old["size_bytes"] - 1.0) * 100.0, 4)
        results.append(
            BudgetResult("max_size_regression_pct", limit, size_growth, size_growth <= limit, "%")
        )
    return results


UNUSABLE = (
    "the stored report has no usable figure to compare with (missing, zero or null); "
    "regenerate it with a compress or verify --json run"
)


def check_stored_figures(stored: dict, source: str) -> None:
    """The figures a regression check reads must be numbers or null, not text or tables."""
    for section, key, sub in STORED_FIGURES:
        value = stored.get(section) or {}
        value = value.get(key) if isinstance(value, dict) else value
        if sub and isinstance(value, dict):
            value = value.get(sub)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            where = ".".join(p for p in (section, key, sub) if p)
            raise UsageError(
                f"--against '{source}': '{where}' is {value!r}, not a number; the file was edited "
                "or is not a compress report. Pass the report.json a compress run wrote."
            )


STORED_FIGURES = (
    ("compressed", "accuracy", None),
    ("compressed", "size_bytes", None),
    ("compressed", "latency_ms", "p50"),
    ("baseline", "latency_ms", "p50"),
)


def _latency_growth(stored: dict, base: dict, comp: dict) -> tuple[float | None, str]:
    """p50 growth in %, of artifact/baseline ratios when both runs timed the same baseline."""
    old_comp = (stored["compressed"].get("latency_ms") or {}).get("p50")
    old_base = ((stored.get("baseline") or {}).get("latency_ms") or {}).get("p50")
    now_comp, now_base = comp["latency_ms"]["p50"], base["latency_ms"]["p50"]
    if not old_comp:
        return None, UNUSABLE
    same_baseline = old_base and stored["baseline"].get("runtime") == base["runtime"]
    if same_baseline:
        growth = (now_comp / now_base) / (old_comp / old_base) - 1.0
        return round(growth * 100.0, 2), "p50 relative to the baseline timed in the same run"
    return round((now_comp / old_comp - 1.0) * 100.0, 2), "absolute p50 (machines may differ)"
