"""Recipes: TOML round trips, unknown keys, type checks and paths relative to the recipe."""

from __future__ import annotations

import shutil

import pytest

from compressor.judging.budget import Budget
from compressor.limits import DISTILL_RANGES, check_fields
from compressor.recipe import (
    DistillConfig,
    Recipe,
    check_choices,
    check_counts,
    load_recipe,
    recipe_from_dict,
)
from foundation.errors import UsageError


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


def test_recipes_are_type_checked_and_paths_are_relative_to_the_recipe(example, tmp_path, cli):
    folder = tmp_path / "proj"
    folder.mkdir()
    shutil.copy(example["model"], folder / "m.pt2")
    (folder / "r.toml").write_text('model = "m.pt2"\nruns = 2\nthreads = "2"\n')
    bad = cli(["--recipe", folder / "r.toml", "-o", tmp_path / "o"])
    assert bad.exit_code == 2 and "'threads' is '2' (str)" in bad.output
    (folder / "r.toml").write_text(
        'model = "m.pt2"\nruns = 2\n[budget]\nmax_size_mb = 5\ndefault_floor = false\n'
    )
    good = cli(["--recipe", folder / "r.toml", "-o", tmp_path / "o"])
    assert good.exit_code == 0, good.output
    folder_as_recipe = cli(["--recipe", folder, "-o", tmp_path / "o2"])
    assert folder_as_recipe.exit_code == 2 and "could not be read" in folder_as_recipe.output


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("calibration", "foo", "choose one of ['auto', 'minmax', 'entropy', 'percentile']"),
        ("tune_objective", "speed", "choose one of ['accuracy', 'latency']"),
        ("threads", 0, "give at least 1"),
        ("runs", -1, "give at least 1"),
        ("calib_samples", 0, "give at least 1"),
    ],
)
def test_a_file_with_a_bad_choice_or_count_is_refused_before_any_work(key, value, says):
    with pytest.raises(UsageError, match=r"Recipe 'r.toml': " + key) as caught:
        recipe_from_dict({"model": "m.pt2", key: value}, "Recipe 'r.toml'")
    assert says in str(caught.value)


def test_distill_patience_below_one_is_refused():
    with pytest.raises(UsageError, match="--patience"):
        check_fields(DistillConfig(patience=0), DISTILL_RANGES)
    check_fields(DistillConfig(patience=1), DISTILL_RANGES)


def test_counts_from_flags_are_named_as_flags():
    with pytest.raises(UsageError, match=r"^--calib-samples 0; give at least 1\.$"):
        check_counts({"threads": 2, "calib_samples": 0})
    with pytest.raises(UsageError, match=r"^--warmup -1; give at least 0\.$"):
        check_counts({"warmup": -1})
    check_counts({"threads": 1, "runs": 1, "warmup": 0, "calib_samples": None, "tune_trials": 1})


def test_choices_of_a_recipe_built_in_code_are_checked_before_any_work(example, tmp_path):
    from compressor.pipeline.run import validate_recipe

    with pytest.raises(UsageError, match=r"^--tune-objective 'speed'; choose one of"):
        check_choices({"tune_objective": "speed"})
    recipe = Recipe(model=str(example["model"]), output=str(tmp_path / "o"), calibration="x")
    with pytest.raises(UsageError, match=r"--calibration 'x'; choose one of \['auto'"):
        validate_recipe(recipe)
    assert not (tmp_path / "o").exists()
