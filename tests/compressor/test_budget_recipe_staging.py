"""Budgets, recipe TOML round trips and staged outputs."""

from __future__ import annotations

import numpy as np
import pytest

from compressor.budget import Budget, check_budgets
from compressor.evaluate import top1_accuracy
from compressor.fidelity import measure_fidelity
from compressor.recipe import Recipe, load_recipe
from compressor.staging import staged_output
from foundation.errors import UsageError

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
    assert "min_fidelity" not in verdicts  # a per-output floor check (compressor/floor.py)


def test_accuracy_budget_without_labels_fails_with_a_reason():
    (result,) = check_budgets(Budget(max_accuracy_drop=1), {**BASE, "accuracy": None}, COMP)
    assert not result.passed and "no labels" in result.note


def test_recipe_round_trips_through_toml(tmp_path):
    recipe = Recipe(
        model="m.pt2",
        precision="int8",
        calib="c.npz",
        calib_samples=64,
        input_shapes={"x": [1, 3, 8, 8]},
        target_options={"workspace_mb": 512},
        budget=Budget(max_accuracy_drop=1.0, max_latency_ms=5.0),
    )
    path = tmp_path / "recipe.toml"
    path.write_text(recipe.to_toml())
    assert load_recipe(path) == recipe


def test_recipe_with_unknown_keys_is_rejected(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('model = "m.pt2"\nprecison = "int8"\n')
    with pytest.raises(UsageError, match="precison"):
        load_recipe(path)
    path.write_text('model = "m.pt2"\n[budget]\nmax_drop = 1\n')
    with pytest.raises(UsageError, match="max_drop"):
        load_recipe(path)


def test_staged_output_moves_files_in_on_success_only(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_output(out) as stage:
        (stage / "report.json").write_text("{}")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with staged_output(out) as stage:
        (stage / "report.json").write_text("{}")
    assert (out / "report.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_fidelity_metrics_and_accuracy():
    ref = np.array([[1.0, 0.0, 2.0], [0.5, 3.0, 0.0]])
    same = measure_fidelity(ref, ref, (1,))
    assert same.cosine_mean == pytest.approx(1.0) and same.max_abs_error == 0.0
    noisy = measure_fidelity(ref, ref + 0.1, (1,))
    assert 0 < noisy.sqnr_mean_db < 200 and noisy.collapse_share == 0.0
    assert top1_accuracy(ref, np.array([2, 1])) == 1.0
    assert top1_accuracy(ref, np.array([0, 1])) == 0.5
    assert top1_accuracy(ref, None) is None
