"""The day-to-day commands: `compress bench`, `compress verify` and `compress package`."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import click

from compressor import strict_json
from compressor.budget import Budget
from compressor.cli import CONSOLE, ERR, TASK_HELP, _batch_axes, _shape_option, handle_errors
from compressor.errors import UsageError
from compressor.limits import BUDGET_RANGES, REGRESSION_RANGES, check_fields, check_threads
from compressor.recipe import field_help
from compressor.regression import Regression
from compressor.tasks import parse_task_option

PATH = click.Path(path_type=Path)
# What each output option writes: an existing file is replaced only when its name ends like
# ours (and, for bundles, it starts with the gzip magic), so inputs and foreign files survive.
OUTPUT_KINDS: dict[str, tuple[tuple[str, ...], bytes]] = {
    "--junit": ((".xml",), b""),
    "--json": ((".json",), b""),
    "--output": ((".tar.gz", ".tgz"), b"\x1f\x8b"),
}


@click.command("bench")
@click.argument("artifacts", nargs=-1, type=PATH)
@click.option(
    "--compare",
    is_flag=True,
    help="Time all ARTIFACTS interleaved in one run with ratios to the first "
    "(implied by several ARTIFACTS).",
)
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Warm-up runs.")
@click.option("--threads", type=int, default=1, show_default=True, help="Intra-op threads.")
@click.option("--batch", type=int, default=1, show_default=True, help="Samples per call.")
@click.option(
    "--data", default=None, help="Time on these samples (.npz, image folder, entry point)."
)
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
    from compressor.bench import BenchSettings, bench_artifacts, bench_json, render_bench
    from compressor.model_data import load_data_for

    if not artifacts:
        raise UsageError("No artifact given. Usage: compress bench MODEL.onnx [MORE ...].")
    if compare and len(artifacts) < 2:
        raise UsageError("--compare needs at least two artifacts: compress bench --compare A B.")
    from calibration.preprocess import parse_preprocess as parse_image_preprocess

    shapes = _shape_option(opts.pop("input_shape"))
    prep = parse_image_preprocess(opts.pop("image_preprocess"))
    axes = _batch_axes(opts.pop("batch_axis"))
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


@click.command("verify")
@click.argument("artifact", type=PATH)
@click.option(
    "--baseline", required=True, type=PATH, help="Original model (.pt2, TorchScript, .onnx)."
)
@click.option("--eval", "eval_", default=None, help=field_help("eval"))
@click.option("--max-accuracy-drop", type=float, help=field_help("max_accuracy_drop", Budget))
@click.option("--max-latency-ms", type=float, help=field_help("max_latency_ms", Budget))
@click.option("--max-size-mb", type=float, help=field_help("max_size_mb", Budget))
@click.option("--min-fidelity", type=float, help=field_help("min_fidelity", Budget))
@click.option("--min-sqnr", type=float, help=field_help("min_sqnr", Budget))
@click.option("--max-metric-drop", type=float, help=field_help("max_metric_drop", Budget))
@click.option(
    "--default-floor/--no-default-floor", default=True, help=field_help("default_floor", Budget)
)
@click.option("--metric", default=None, metavar="PKG.MODULE:FUNCTION", help=field_help("metric"))
@click.option("--task", multiple=True, metavar="[OUTPUT=]KIND", help=TASK_HELP)
@click.option("--against", type=PATH, help="A stored report.json: also fail on regressions vs it.")
@click.option(
    "--max-accuracy-regression", type=float, help=field_help("max_accuracy_regression", Regression)
)
@click.option(
    "--max-latency-regression-pct",
    type=float,
    default=Regression.max_latency_regression_pct,
    show_default=True,
    help=field_help("max_latency_regression_pct", Regression),
)
@click.option(
    "--max-size-regression-pct",
    type=float,
    default=Regression.max_size_regression_pct,
    show_default=True,
    help=field_help("max_size_regression_pct", Regression),
)
@click.option(
    "--max-sqnr-regression-db",
    type=float,
    default=Regression.max_sqnr_regression_db,
    show_default=True,
    help=field_help("max_sqnr_regression_db", Regression),
)
@click.option("--threads", type=int, default=1, show_default=True, help=field_help("threads"))
@click.option("--warmup", type=int, default=10, show_default=True, help=field_help("warmup"))
@click.option("--runs", type=int, default=100, show_default=True, help=field_help("runs"))
@click.option("--input-shape", multiple=True, help="NAME:1x3x224x224 for TorchScript baselines.")
@click.option("--model-factory", default=None, help=field_help("model_factory"))
@click.option("--trust-pickle", is_flag=True, help=field_help("trust_pickle"))
@click.option(
    "--preprocess",
    default=None,
    help="How an --eval image folder becomes inputs (same syntax as compress --preprocess).",
)
@click.option(
    "--batch-axis",
    multiple=True,
    metavar="NAME:AXIS",
    help="--eval arrays whose samples lie on another axis (same as compress --batch-axis).",
)
@click.option("--junit", type=PATH, help="Write a JUnit XML report (one testcase per budget).")
@click.option("--json", "json_path", type=PATH, help="Write the verify report as JSON.")
@handle_errors
def verify_command(
    artifact: Path, junit: Path | None, json_path: Path | None, **opts: object
) -> None:
    """CI check: run ARTIFACT in its runtime vs the baseline; exit 0 pass, 1 budget failed, 2 usage."""
    from compressor.ci_check import CheckRequest, run_ci_check
    from compressor.junit import write_junit
    from compressor.report import render_report
    from compressor.staging import staged_file

    started = time.perf_counter()
    inputs = _verify_inputs(artifact, opts)
    for option, out in (("--junit", junit), ("--json", json_path)):
        check_output(out, option, inputs)
    if junit and json_path and junit.resolve() == json_path.resolve():
        raise UsageError("--junit and --json name the same file; give each its own path.")
    budget = Budget(**{f.name: opts.pop(f.name) for f in dataclasses.fields(Budget)})
    check_fields(budget, BUDGET_RANGES)
    check_threads(opts["threads"])
    regression = Regression(**{f.name: opts.pop(f.name) for f in dataclasses.fields(Regression)})
    check_fields(regression, REGRESSION_RANGES)
    shapes = _shape_option(opts.pop("input_shape"))
    request = CheckRequest(
        artifact,
        budget=budget,
        regression=regression,
        input_shapes=shapes,
        eval=opts.pop("eval_"),
        tasks=parse_task_option(opts.pop("task")),
        batch_axes=_batch_axes(opts.pop("batch_axis")),
        **opts,
    )
    report = run_ci_check(request)
    render_report(report, CONSOLE)
    if not report.budgets:
        ERR.print("[yellow]warning[/]: no budgets given; this check only proves the artifact runs.")
    if junit:
        write_junit(report, junit, time.perf_counter() - started)
    if json_path:
        with staged_file(json_path) as out:
            out.write((strict_json.dumps(report.to_json_dict(), indent=2) + "\n").encode())
    sys.exit(0 if report.passed else 1)


@click.command("package")
@click.argument("folder", required=False, type=PATH)
@click.option("--output", "-o", type=PATH, help="Bundle path [default: DIR.tar.gz beside DIR].")
@click.option(
    "--preprocess",
    multiple=True,
    metavar="KEY=VALUE|FILE.json",
    help="Preprocessing for the manifest (e.g. mean=[0.5] scale=1/255), or a JSON file of it.",
)
@click.option("--check", "check_path", type=PATH, help="Verify a bundle's hashes instead.")
@handle_errors
def package_command(
    folder: Path | None, output: Path | None, preprocess: tuple[str, ...], check_path: Path | None
) -> None:
    """Bundle a compress output DIR (model, report, manifest.json) reproducibly, or --check one."""
    from compressor.package import check_bundle, write_bundle

    if (folder is None) == (check_path is None):
        raise UsageError(
            "Give either DIR to package (compress package out/ -o bundle.tar.gz) or "
            "--check BUNDLE to verify one."
        )
    if check_path is not None:
        result = check_bundle(check_path)
        for problem in result.problems:
            ERR.print(f"[red]mismatch[/]: {problem}", highlight=False)
        if not result.ok:
            what = "does not match its manifest" if result.manifest else "is not a valid bundle"
            ERR.print(f"[bold red]FAILED[/]: {check_path} {what}.")
            sys.exit(1)
        CONSOLE.print(f"[bold green]OK[/]: {result.files_checked} files match manifest.json")
        return
    folder_abs = folder.resolve()
    if not folder_abs.name:
        raise UsageError(f"Cannot package '{folder}' (the filesystem root); pass -o BUNDLE.")
    out = output or folder_abs.with_name(folder_abs.name + ".tar.gz")
    check_output(out, "--output", [folder / "report.json", folder / "recipe.toml"])
    manifest = write_bundle(folder, out, parse_preprocess(preprocess))
    model = manifest["model"]
    CONSOLE.print(
        f"wrote {out}: {model['file']} ({model['target']}, {model['precision']}) and "
        f"{len(manifest['files'])} files with sha256 in manifest.json"
    )


def check_output(path: Path | None, option: str, inputs: list[Path]) -> None:
    """Refuse, before any work, an output that is an input, a folder or a foreign file."""
    if path is None:
        return
    suffixes, magic = OUTPUT_KINDS[option]
    resolved = path.resolve()
    for src in inputs:
        if src.exists() and src.resolve() == resolved:
            raise UsageError(
                f"{option} '{path}' is also an input of this command ({src}); writing there "
                "would destroy it. Choose another path."
            )
    if path.is_dir():
        raise UsageError(
            f"{option} '{path}' is a directory; give a file path (e.g. {path / ('out' + suffixes[0])})."
        )
    if path.exists() and not (path.name.lower().endswith(suffixes) and _starts_with(path, magic)):
        raise UsageError(
            f"{option} '{path}' already exists and is not a {'/'.join(suffixes)} file this command "
            f"writes; only such files are replaced. Choose a new path ending in {suffixes[0]}."
        )


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(magic)) == magic


def _verify_inputs(artifact: Path, opts: dict) -> list[Path]:
    """Every file `compress verify` reads, which its outputs must not overwrite."""
    from compressor.artifacts import resolve_artifact

    paths = [artifact, opts["baseline"], *([opts["against"]] if opts.get("against") else [])]
    if opts.get("eval_"):
        paths.append(Path(str(opts["eval_"])))
    for given in (artifact, opts["baseline"]):
        if given.exists():
            file = resolve_artifact(given)
            paths += [file, file.parent / "report.json", file.parent / "recipe.toml"]
    return paths


def parse_preprocess(values: tuple[str, ...]) -> dict:
    """KEY=VALUE pairs (values parsed as JSON when they are, else kept as text) and JSON files."""
    spec: dict = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep:
            spec.update(_read_json_object(Path(value)))
            continue
        try:
            spec[key.strip()] = json.loads(raw, parse_constant=_reject_constant)
        except json.JSONDecodeError:
            spec[key.strip()] = raw.strip()
    return spec


def _reject_constant(name: str) -> float:
    raise UsageError(f"--preprocess values must be finite numbers, not {name}.")


def _read_json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(), parse_constant=_reject_constant)
    except FileNotFoundError:
        raise UsageError(f"--preprocess '{path}' is neither KEY=VALUE nor a JSON file.") from None
    except ValueError as exc:  # bad JSON or not text
        raise UsageError(f"--preprocess file '{path}' is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"--preprocess file '{path}' must hold a JSON object.")
    return data


OPS_COMMANDS = (bench_command, verify_command, package_command)
