"""Budgets: limits in points, ms, MB and cosine, and what fails without labels."""

from __future__ import annotations

import pytest

from compressor.judging.budget import Budget, check_budgets

BASE = {"accuracy": 0.95, "size_bytes": 4_000_000, "latency_ms": {"p50": 2.0}}
COMP = {
    "accuracy": 0.94,
    "size_bytes": 1_000_000,
    "latency_ms": {"p50": 1.0},
    "fidelity": {"cosine": 0.998},
}


def test_budgets_compare_in_points_ms_mb_and_cosine():
    results = check_budgets(
        Budget(max_accuracy_drop=0.5, max_latency_ms=1.5, max_size_mb=0.9, min_fidelity=0.99),
        BASE,
        COMP,
    )
    verdicts = {r.name: (r.value, r.passed) for r in results}
    assert verdicts["max_accuracy_drop"] == (pytest.approx(1.0), False)
    assert verdicts["max_latency_ms"] == (1.0, True)
    assert verdicts["max_size_mb"] == (1.0, False)
    assert (
        "min_fidelity" not in verdicts
    )  # a per-output floor check (compressor/judging/default_floor.py)


def test_accuracy_budget_without_labels_fails_with_a_reason():
    (result,) = check_budgets(Budget(max_accuracy_drop=1), {**BASE, "accuracy": None}, COMP)
    assert not result.passed and "no labels" in result.note
