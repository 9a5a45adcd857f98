"""`compress debug MODEL --target T --calib DATA`: which layer breaks int8, at every stage."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from compressor.cli.common import CONSOLE, check_distinct, check_output, handle_errors
from compressor.cli.flags import fields_of, flag, options
from compressor.recipe import CALIBRATION_METHODS, Recipe, check_counts

DEBUG_FLAGS = [
    flag(Recipe, "target"),
    flag(Recipe, "calib", required=True),
    flag(Recipe, "calib_samples"),
    click.option(
        "--calibration",
        type=click.Choice(CALIBRATION_METHODS[1:]),
        default="minmax",
        show_default=True,
        help="Range method of the Q/DQ graph that is debugged.",
    ),
]
TARGET_OPTIONS = flag(Recipe, "target_options")


@click.command("debug")
@click.argument("model")
@options(
    [
        *DEBUG_FLAGS,
        click.option(
            "--precision", type=click.Choice(["int8"]), default="int8", help="Only int8 today."
        ),
        TARGET_OPTIONS,
    ],
    field_default=True,
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="Rows of the layer table on the terminal.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write all rows here.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Write an HTML page.")
@handle_errors
def debug_command(model: str, **flags: object) -> None:
    """Find the layers int8 breaks: per layer SQNR, ranges and outlier channels, worst first."""
    from compressor.debug.render import html_page, render
    from compressor.debug.trace import run_debug  # torch and onnx load only when the command runs
    from compressor.report.staging import staged_file

    settings = fields_of(Recipe, [*DEBUG_FLAGS, TARGET_OPTIONS], flags)
    inputs = [Path(model), Path(settings["calib"])]
    check_output(flags["json_path"], "--json", inputs)  # before any work, never an input
    check_output(flags["html_path"], "--html", inputs)
    if flags["json_path"] and flags["html_path"]:
        check_distinct({"--json": flags["json_path"], "--html": flags["html_path"]})
    check_counts(settings)
    recipe = Recipe(
        model=str(Path(model).absolute()),
        precision="int8",
        calibration=flags["calibration"],
        **settings,
    )
    with tempfile.TemporaryDirectory(prefix="compress-debug-") as tmp:
        result = run_debug(recipe, Path(tmp))
    render(result, CONSOLE, flags["top"])
    if flags["json_path"]:  # staged: a link planted at the path is replaced, never followed
        with staged_file(flags["json_path"]) as out:
            out.write(json.dumps(result, indent=1).encode())
    if flags["html_path"]:
        with staged_file(flags["html_path"]) as out:
            out.write(html_page(result).encode())
