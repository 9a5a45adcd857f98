"""`compress bench`: latency percentiles and throughput of any artifact in its runtime."""

from __future__ import annotations

import json
from pathlib import Path

import click

from compressor.bench import BenchSettings
from compressor.cli.common import (
    CONSOLE,
    PATH,
    handle_errors,
    parse_batch_axes,
    parse_input_shapes,
)
from compressor.cli.flags import flags_of, options
from foundation.errors import UsageError


@click.command("bench")
@click.argument("artifacts", nargs=-1, type=PATH)
@click.option(
    "--compare",
    is_flag=True,
    help="Time all ARTIFACTS interleaved in one run with ratios to the first "
    "(implied by several ARTIFACTS).",
)
@options(flags_of(BenchSettings), field_default=True)
@click.option("--input-shape", multiple=True, help="NAME:1x3x224x224 for TorchScript models.")
@click.option(
    "--preprocess",
    "image_preprocess",
    default=None,
    help="How --data image folders become inputs (same syntax as compress --preprocess).",
)
@click.option(
    "--batch-axis",
    multiple=True,
    metavar="NAME:AXIS",
    help="--data arrays whose samples lie on another axis (same as compress --batch-axis).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@handle_errors
def bench_command(
    artifacts: tuple[Path, ...], compare: bool, as_json: bool, **opts: object
) -> None:
    """Latency percentiles and throughput of any artifact (.onnx, .tflite, .engine, .pt2, ...)."""
    from calibration.preprocess import parse_preprocess as parse_image_preprocess
    from compressor.bench import bench_artifacts, bench_json, render_bench
    from compressor.model.data import load_data_for

    if not artifacts:
        raise UsageError("No artifact given. Usage: compress bench MODEL.onnx [MORE ...].")
    if compare and len(artifacts) < 2:
        raise UsageError("--compare needs at least two artifacts: compress bench --compare A B.")
    shapes = parse_input_shapes(opts.pop("input_shape"))
    prep = parse_image_preprocess(opts.pop("image_preprocess"))
    axes = parse_batch_axes(opts.pop("batch_axis"))
    settings = BenchSettings(**opts)
    if (prep or axes) and not settings.data:
        raise UsageError("--preprocess and --batch-axis describe --data: pass --data DATA.")
    data = (
        load_data_for(settings.data, artifacts[0], shapes, preprocess=prep, batch_axes=axes)
        if settings.data
        else None
    )
    results = bench_artifacts(list(artifacts), settings, data, shapes)
    if as_json:
        click.echo(json.dumps(bench_json(results, settings), indent=2))
    else:
        render_bench(results, settings, CONSOLE)
