"""`compress example`: train a digits CNN, then compress it to int8 and verify it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compressor.cli.common import CONSOLE, ERR, handle_errors
from compressor.judging.budget import Budget
from compressor.recipe import Recipe
from foundation.errors import UsageError


@click.command("example")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    default=Path("compress-example"),
    show_default=True,
    help="Where to write the trained model, data and outputs.",
)
@click.option("--target", "-t", default="onnx", show_default=True, help="Target to compress for.")
@click.option("--epochs", type=int, default=15, show_default=True, help="Training epochs.")
@handle_errors
def example_command(folder: Path, target: str, epochs: int) -> None:
    """Train a CNN on scikit-learn's digits, then compress it to int8 and verify it."""
    from compressor.model.example import claim_example_folder, make_example
    from compressor.pipeline.run import run_pipeline
    from compressor.report.render import render_report

    if epochs < 1:
        raise UsageError(f"--epochs {epochs}: train for at least 1 epoch.")
    claim_example_folder(folder)
    ERR.print(f"[bold]example[/]: training a digits CNN ({epochs} epochs) in {folder}/")
    paths = make_example(folder, epochs)
    recipe = Recipe(
        model=str(paths["model"]),
        target=target,
        precision="int8",
        calib=str(paths["calib"]),
        eval=str(paths["eval"]),
        output=str(folder / "out"),
        budget=Budget(max_accuracy_drop=1.0, max_size_mb=1.0),
    ).with_absolute_paths(Path.cwd())
    report = run_pipeline(recipe)
    render_report(report, CONSOLE)
    CONSOLE.print(
        f"outputs in {folder}/out/. Reproduce: compress --recipe {folder}/out/recipe.toml"
    )
    sys.exit(0 if report.passed else 1)
