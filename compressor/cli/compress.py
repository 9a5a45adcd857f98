"""`compress MODEL [options]` (the `run` command): compress a model and verify it."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from compressor.cli.common import CONSOLE, handle_errors
from compressor.cli.flags import Flag, flags_of, given, options, ordered
from compressor.judging.budget import Budget
from compressor.recipe import CODE_FIELDS, NESTED, Recipe, check_file_code, load_recipe
from compressor.report.tracking import log_tracked_run, open_tracker, track_option
from foundation.errors import UsageError

PRECISION_FLAGS = {
    "int8": "Static int8 (needs --calib).",
    "fp16": "Half-precision weights and compute.",
    "dynamic": "Dynamic int8: int8 weights, activations quantized at run time.",
}
NOT_FLAGS = ("model", "precision", "int8_plan", "int8_fp16")  # argument, PRECISION_FLAGS, recipe
ALLOW_CODE_HELP = (
    "Let the --recipe file name Python code to import and run (model_factory, metric, or "
    "pkg.module:function data). Command line only; flags such as --metric need no permission."
)
RUN_FLAGS: list[Flag] = flags_of(Recipe, skip=NOT_FLAGS)
HAND_WRITTEN = {
    "recipe_path": click.option(
        "--recipe",
        "recipe_path",
        type=click.Path(path_type=Path),
        help="Run a recipe.toml (e.g. one saved by an earlier run); flags given override it.",
    ),
    "allow_code": click.option("--allow-code", is_flag=True, help=ALLOW_CODE_HELP),
    **{
        name: click.option(f"--{name}", is_flag=True, help=h) for name, h in PRECISION_FLAGS.items()
    },
}
# --help order; a config field not named here is listed after these.
HELP_ORDER = (
    "recipe_path allow_code target int8 fp16 dynamic calib eval calib_samples calibration "
    "int8__equalize int8__smooth int8__smooth_alpha int8__smooth_mul int8__bias_correction int8__learned_rounding int8__rounding_time int8__weight_bits auto tune_trials "
    "tune_time tune_objective threads warmup runs model_factory trust_pickle input_shapes preprocess batch_axes "
    + " ".join(f"budget__{f.name}" for f in dataclasses.fields(Budget))
    + " metric task target_options prune__ratio prune__method prune__global_ranking "
    "prune__exclude prune__round_to distill__enabled train distill__epochs distill__lr "
    "distill__batch_size distill__optimizer distill__temperature distill__alpha distill__patience "
    "distill__features seed output"
).split()


@click.command("run")
@click.argument("model", required=False)
@options(ordered({**{f.param: f for f in RUN_FLAGS}, **HAND_WRITTEN}, HELP_ORDER))
@track_option
@handle_errors
def run_command(model: str | None, recipe_path: Path | None, track: str | None, **flags) -> None:
    """Compress MODEL for a target and verify it against budgets."""
    allow_code, track_timeout = flags.pop("allow_code"), flags.pop("track_timeout")
    recipe, sources = build_recipe(model, recipe_path, flags, allow_code)
    tracker = open_tracker(track, track_timeout)
    from compressor.pipeline.run import run_pipeline
    from compressor.report.render import render_report

    report = run_pipeline(recipe, sources)
    render_report(report, CONSOLE)
    log_tracked_run(tracker, recipe.output)
    CONSOLE.print(f"outputs in {recipe.output}/ (report.json, recipe.toml)")
    sys.exit(0 if report.passed else 1)


def _precision_flag(flags: dict) -> str | None:
    chosen = [name for name in PRECISION_FLAGS if flags.pop(name)]
    if len(chosen) > 1:
        raise UsageError(f"Choose one precision; got {', '.join('--' + c for c in chosen)}.")
    return chosen[0] if chosen else None


def build_recipe(
    model: str | None, recipe_path: Path | None, flags: dict, allow_code: bool = False
) -> tuple[Recipe, dict[str, str]]:
    """The recipe (a --recipe file overridden by the flags given) and which budgets were flags;
    what the file alone decides (code to run, an output outside here) is checked."""
    precision = _precision_flag(flags)
    base = Recipe()
    if recipe_path:  # paths inside a recipe are relative to the recipe file
        base = load_recipe(recipe_path).with_absolute_paths(recipe_path.absolute().parent)
    values = given(RUN_FLAGS, flags)
    nested = {
        name: dataclasses.replace(getattr(base, name), **values.get(cls, {}))
        for name, cls in NESTED.items()
    }
    updates = {k: v for k, v in {"model": model, "precision": precision}.items() if v}
    updates |= values.get(Recipe, {})
    recipe = dataclasses.replace(base, **nested, **updates)
    if not recipe.model:
        raise UsageError(
            "No model given. Usage: compress MODEL [--target onnx --int8 ...]; see compress --help."
        )
    sources = {name: "flag" for name in values.get(Budget, {})}
    recipe = recipe.with_absolute_paths(Path.cwd())
    if recipe_path:
        flagged = set(values.get(Recipe, {}))
        from_file = tuple(n for n in CODE_FIELDS if n not in flagged)
        check_file_code(recipe, f"Recipe '{recipe_path}'", allow_code, from_file)
        if "output" not in flagged:
            check_file_output(recipe, recipe_path)
    return recipe, sources


def check_file_output(recipe: Recipe, recipe_path: Path) -> None:
    """Without -o, a recipe file may only put outputs inside the current folder."""
    here = Path.cwd().resolve()
    try:
        out = Path(recipe.output).resolve()
    except (OSError, RuntimeError):  # a link loop: outside as far as anyone can tell
        out = None
    if out is None or not out.is_relative_to(here):
        raise UsageError(
            f"Recipe '{recipe_path}' would write its outputs to '{recipe.output}', outside the "
            f"current folder ({here}); a recipe file may not choose that alone. Pass -o DIR to "
            "say where the outputs go (the same folder, if you meant it)."
        )
