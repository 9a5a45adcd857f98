"""`compress sweep SWEEP.toml -o DIR`: many models × targets × recipes, here or on Ray."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from compressor.cli.common import handle_errors
from compressor.cli.flags import flag, options
from compressor.recipe import Recipe
from compressor.report.tracking import track_option
from compressor.sweep.spec import TIMINGS


@click.command("sweep")
@click.argument("sweep_file", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=Path("sweep-out"),
    show_default=True,
    help="Folder for DIR/<job-id>/ outputs and the summary.",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Jobs' CPUs on an embedded local Ray [default: the core count]; 1 runs "
    "jobs here one at a time without Ray.",
)
@click.option(
    "--ray-address",
    default=None,
    help="Submit to an existing Ray cluster (ray://host:10001, host:6379 or auto); "
    "inputs travel with each job and outputs come back to DIR.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Skip jobs whose outputs are complete (same recipe and input hashes).",
)
@click.option(
    "--retries",
    type=int,
    default=1,
    show_default=True,
    help="Extra tries for a job whose process or node died (errors are not retried).",
)
@click.option(
    "--timing",
    type=click.Choice(TIMINGS),
    default="shared",
    show_default=True,
    help="exclusive: re-time every artifact alone on this machine after the sweep.",
)
@options(
    [
        flag(
            Recipe,
            "trust_pickle",
            help="Allow every job to unpickle its model (runs code from the model files); a sweep "
            "file cannot grant this itself.",
        )
    ],
    field_default=True,
)
@click.option(
    "--allow-code",
    is_flag=True,
    help="Let the sweep file's jobs name Python code to import and run (model_factory, metric, "
    "pkg.module:function data); a sweep file cannot grant this itself.",
)
@track_option
def sweep_command(sweep_file: Path, output: Path, **flags: object) -> None:
    """Run every job of SWEEP_FILE as an ordinary compress run; exit 0 when all passed."""
    from compressor.sweep.backends import default_workers
    from compressor.sweep.run import SweepSettings

    stderr = Console(file=sys.stderr)  # bound now: jobs run in-process redirect sys.stderr
    settings = SweepSettings(sweep_file, output, cores=default_workers(), **flags)
    summary = handle_errors(_run)(settings, stderr)
    sys.exit(summary["exit_code"])


def _run(settings: object, stderr: Console) -> dict:
    from compressor.sweep.run import run_sweep
    from compressor.sweep.summary import render_summary

    try:
        summary = run_sweep(settings, stderr)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (compressor.cli.common.Terminated)
        stderr.print("[red]interrupted[/]: finished jobs are kept; rerun with --resume.")
        signum = getattr(exc, "signum", None)
        sys.exit(128 + signum if signum else 130)
    render_summary(summary, Console())
    Console().print(f"summary in {settings.output}/summary.md (and summary.json)")
    return summary
