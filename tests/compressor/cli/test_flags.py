"""Flags generated from the config dataclasses: every field is a flag, given flags override a
recipe file, field defaults reach the commands, and the CLI modules import without circles."""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from compressor.cli import main
from compressor.cli.compress import NOT_FLAGS, RUN_FLAGS, build_recipe
from compressor.cli.flags import REGRESSION_FLAGS, build, flag, flags_of, given, options
from compressor.judging.budget import Budget
from compressor.judging.regression import Regression
from compressor.recipe import NESTED, PruneConfig, Recipe
from foundation.errors import UsageError

CLI_DIR = Path(__file__).parents[3] / "compressor" / "cli"


def params(command: str, args: list[str]) -> dict:
    """The parsed click values of `compress COMMAND ARGS`, without running the command."""
    return main.commands[command].make_context(command, list(args)).params


def test_every_config_field_is_a_run_flag_with_its_help() -> None:
    expected = [(Recipe, f.name) for f in dataclasses.fields(Recipe) if f.name not in NOT_FLAGS]
    expected = [item for config, name in expected for item in _expand(config, name)]
    assert sorted((f.config.__name__, f.field) for f in RUN_FLAGS) == sorted(expected)
    options_by_name = {p.name: p for p in main.commands["run"].params}
    for item in RUN_FLAGS:
        option = options_by_name[item.param]
        meaning = next(f for f in dataclasses.fields(item.config) if f.name == item.field)
        assert item.long in option.opts
        assert (item.help or meaning.metadata["help"]) in option.help


def _expand(config: type, name: str) -> list[tuple[str, str]]:
    nested = NESTED.get(name)
    if nested is None:
        return [(config.__name__, name)]
    return [(nested.__name__, f.name) for f in dataclasses.fields(nested)]


def test_a_new_config_field_becomes_a_typed_flag_with_its_default_in_help() -> None:
    @dataclass(frozen=True)
    class ToyConfig:
        rounds: int = field(default=3, metadata={"help": "How many rounds."})
        scale: float | None = field(default=None, metadata={"help": "Scale factor."})
        strict: bool = field(default=False, metadata={"help": "Refuse on doubt."})
        names: tuple[str, ...] = field(default=(), metadata={"help": "Names to keep."})

    seen = {}

    @click.command()
    @options(flags_of(ToyConfig))
    def toy(**values: object) -> None:
        seen.update(given(flags_of(ToyConfig), values))

    runner = CliRunner()
    help_text = runner.invoke(toy, ["--help"]).output
    assert "--rounds INTEGER" in help_text and "How many rounds. [default: 3]" in help_text
    assert "--scale FLOAT" in help_text and "--strict" in help_text and "--names TEXT" in help_text
    result = runner.invoke(toy, ["--rounds", "5", "--names", "a", "--names", "b"])
    assert result.exit_code == 0, result.output
    assert seen == {ToyConfig: {"rounds": 5, "names": ("a", "b")}}
    assert runner.invoke(toy, ["--rounds", "many"]).exit_code == 2


def test_given_flags_override_a_recipe_file_and_the_rest_of_it_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # without -o, a recipe's outputs must stay in the current folder
    recipe_file = tmp_path / "recipe.toml"
    base = Recipe(model="m.pt2", calib="c.npz", prune=PruneConfig(ratio=0.3, method="l2"))
    recipe_file.write_text(dataclasses.replace(base, budget=Budget(max_size_mb=2.0)).to_toml())
    args = ["--recipe", str(recipe_file), "--prune", "0.5", "--epochs", "7", "--int8"]
    args += ["--max-accuracy-drop", "1", "-O", "workspace=64", "--task", "classify"]
    args += ["--batch-axis", "state:1", "--no-default-floor"]
    values = params("run", args)
    recipe, sources = build_recipe(None, values.pop("recipe_path"), values)
    assert recipe.model == str(tmp_path / "m.pt2") and recipe.calib == str(tmp_path / "c.npz")
    assert recipe.precision == "int8" and recipe.prune == PruneConfig(ratio=0.5, method="l2")
    assert recipe.distill.epochs == 7 and recipe.distill.lr == 1e-3
    assert recipe.budget == Budget(max_accuracy_drop=1.0, max_size_mb=2.0, default_floor=False)
    assert sources == {"max_accuracy_drop": "flag", "default_floor": "flag"}
    assert recipe.target_options == {"workspace": "64"} and recipe.task == {"*": "classify"}
    assert recipe.batch_axes == {"state": 1} and recipe.output == str(tmp_path / "out")


def test_two_precisions_or_no_model_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="Choose one precision; got --int8, --fp16"):
        build_recipe("m.pt2", None, params("run", ["--int8", "--fp16"]))
    with pytest.raises(UsageError, match="No model given"):
        build_recipe(None, None, params("run", []))


def test_verify_regression_flags_default_to_the_regression_dataclass() -> None:
    args = ["a.onnx", "--baseline", "m.pt2"]
    assert build(Regression, REGRESSION_FLAGS, params("verify", args)) == Regression()
    changed = params("verify", [*args, "--max-size-regression-pct", "50"])
    assert build(Regression, REGRESSION_FLAGS, changed).max_size_regression_pct == 50.0
    debug = params("debug", ["m.pt2", "--calib", "c.npz"])
    assert debug["target"] == Recipe.target and debug["calibration"] == "minmax"  # no auto here


def test_a_spec_change_renames_only_that_command_s_flag() -> None:
    custom = flag(Recipe, "batch_axes", help="Per-command help.")
    assert custom.long == "--batch-axis" and custom.metavar == "NAME:AXIS"
    assert flag(PruneConfig, "round_to").long == "--prune-round-to"


def test_cli_modules_import_only_downwards() -> None:
    """common <- flags <- one module per command <- the package root: no import circles."""
    allowed = {
        "common": set(),
        "flags": {"compressor.cli.common"},
    }
    for path in CLI_DIR.glob("*.py"):
        if path.name == "__init__.py":
            continue
        imported = {m for m in _imports(path) if m.startswith("compressor.cli")}
        expected = allowed.get(path.stem, {"compressor.cli.common", "compressor.cli.flags"})
        assert imported <= expected, f"{path.name} imports {imported - expected}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_a_required_flag_left_out_is_a_usage_error(tmp_path: Path) -> None:
    """click 8.3+ takes an explicit default=None as given: `compress debug` without --calib
    used to reach the command with calib None and exit 3."""
    model = tmp_path / "model.pt2"
    model.write_bytes(b"not read: the missing flag is refused first")
    result = CliRunner().invoke(main, ["debug", str(model)])
    assert result.exit_code == 2, result.output
    assert "Missing option '--calib'" in result.output
