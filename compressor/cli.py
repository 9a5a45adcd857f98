"""The `compress` command line: `compress MODEL [options]` plus subcommands."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from compressor import __version__
from compressor.budget import Budget
from compressor.cli_sweep import sweep_command
from compressor.errors import CompressError, UsageError
from compressor.recipe import (
    OPTIMIZERS,
    PRUNE_METHODS,
    DistillConfig,
    Int8Config,
    PruneConfig,
    Recipe,
    field_help,
    load_recipe,
)
from compressor.tasks import parse_task_option
from compressor.tracking import log_tracked_run, open_tracker, track_option

CONSOLE = Console()
ERR = Console(stderr=True)
TASK_HELP = (
    "Task rule for every output, or OUTPUT=KIND for one (repeatable): classify, embed, detect, "
    "segment, sequence or regression [default: inferred from shape, values and labels]."
)


class DefaultGroup(click.Group):
    """A group whose first argument may be a model path: then the `run` command is implied."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


INTERNAL_ERROR = 3
CLEANUP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP raised as an interrupt, so staged outputs are cleaned up like on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: object) -> None:
    for sig in CLEANUP_SIGNALS:  # a second signal must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def _cleanup_on_signals() -> Iterator[None]:
    """Route termination signals through the interrupt path while a command runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in CLEANUP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def handle_errors(func: Callable) -> Callable:
    """Print CompressErrors as one paragraph, no traceback, and exit with their code."""

    @wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            with _cleanup_on_signals():
                return func(*args, **kwargs)
        except CompressError as exc:
            ERR.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except OSError as exc:
            if exc.filename is None or os.environ.get("COMPRESS_DEBUG"):
                raise
            ERR.print(
                f"[bold red]error:[/] cannot use '{escape(str(exc.filename)[:200])}': "
                f"{escape(exc.strerror or str(exc))}. Check the path (its length, links and "
                "permissions) and try again.",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(2)
        except KeyboardInterrupt as exc:
            ERR.print("[red]interrupted[/]: nothing was written.")
            sys.exit(128 + exc.signum if isinstance(exc, Terminated) else 130)
        except Exception as exc:
            if os.environ.get("COMPRESS_DEBUG"):
                raise
            ERR.print(
                f"[bold red]internal error:[/] {escape(type(exc).__name__)}: "
                f"{escape(str(exc)[:500])}\nNothing was written. This is a bug in compress, not "
                "in your input: rerun with COMPRESS_DEBUG=1 for the traceback and report it.",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(INTERNAL_ERROR)

    return wrapper


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compress")
def main() -> None:
    """Compress a trained model and ship it to a device.

    \b
    compress MODEL --target onnx --int8 --calib calib.npz --eval eval.npz -o out/
    compress example            train a digits CNN and compress it (no downloads)
    compress targets            list targets and whether they work on this machine
    compress bench ARTIFACT     latency of any artifact in its runtime
    compress verify ARTIFACT --baseline MODEL --eval DATA    CI budget check (JUnit)
    compress package DIR -o bundle.tar.gz                     reproducible edge bundle
    compress sweep SWEEP.toml -o DIR    many models × targets × recipes, here or on Ray
    compress debug MODEL --calib DATA   which layers int8 breaks, and the fix

    Exit codes: 0 all budgets met, 1 a budget failed, 2 bad usage or bad input,
    3 an internal error (a bug; rerun with COMPRESS_DEBUG=1 for the traceback).
    """


def _shape_option(values: tuple[str, ...]) -> dict[str, list[int]]:
    shapes = {}
    for value in values:
        name, sep, dims = value.rpartition(":")
        try:
            shape = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            shape = []
        if len(shape) < 2 or min(shape) < 1:
            raise UsageError(
                f"--input-shape '{value}' must look like NAME:1x3x224x224 (batch first, "
                "positive sizes; NAME may be left out for a single-input model)."
            )
        shapes[name or "input"] = shape
    return shapes


def _batch_axes(values: tuple[str, ...]) -> dict[str, int]:
    axes = {}
    for value in values:
        name, _, axis = value.rpartition(":")
        if not name or not axis.isdigit():
            raise UsageError(f"--batch-axis '{value}' must look like NAME:AXIS, e.g. state:1.")
        axes[name] = int(axis)
    return axes


def _key_values(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"--target-option '{value}' must look like KEY=VALUE.")
        pairs[key.strip()] = val.strip()
    return pairs


@main.command("run")
@click.argument("model", required=False)
@click.option(
    "--recipe",
    "recipe_path",
    type=click.Path(path_type=Path),
    help="Run a recipe.toml (e.g. one saved by an earlier run); flags given override it.",
)
@click.option("--target", "-t", default=None, help=field_help("target") + " [default: onnx]")
@click.option("--int8", is_flag=True, help="Static int8 (needs --calib).")
@click.option("--fp16", is_flag=True, help="Half-precision weights and compute.")
@click.option(
    "--dynamic", is_flag=True, help="Dynamic int8: int8 weights, activations quantized at run time."
)
@click.option("--calib", default=None, help=field_help("calib"))
@click.option("--eval", "eval_", default=None, help=field_help("eval"))
@click.option("--calib-samples", type=int, default=None, help=field_help("calib_samples"))
@click.option(
    "--calibration",
    type=click.Choice(["auto", "minmax", "entropy", "percentile"]),
    default=None,
    help=field_help("calibration") + " [default: auto]",
)
@click.option(
    "--equalize/--no-equalize", default=None, help=field_help("equalize", Int8Config) + " [on]"
)
@click.option("--smooth/--no-smooth", default=None, help=field_help("smooth", Int8Config) + " [on]")
@click.option(
    "--smooth-alpha",
    type=float,
    default=None,
    help=field_help("smooth_alpha", Int8Config) + " [0.5]",
)
@click.option(
    "--smooth-mul/--no-smooth-mul",
    default=None,
    help=field_help("smooth_mul", Int8Config) + " [off]",
)
@click.option(
    "--bias-correction/--no-bias-correction",
    default=None,
    help=field_help("bias_correction", Int8Config) + " [on]",
)
@click.option("--auto", is_flag=True, default=None, help=field_help("auto"))
@click.option("--tune-trials", type=int, default=None, help=field_help("tune_trials") + " [12]")
@click.option("--tune-time", type=float, default=None, help=field_help("tune_time") + " [600]")
@click.option(
    "--tune-objective",
    type=click.Choice(["accuracy", "latency"]),
    default=None,
    help=field_help("tune_objective") + " [default: accuracy]",
)
@click.option("--threads", type=int, default=None, help=field_help("threads") + " [default: 1]")
@click.option("--warmup", type=int, default=None, help=field_help("warmup") + " [default: 10]")
@click.option("--runs", type=int, default=None, help=field_help("runs") + " [default: 100]")
@click.option("--model-factory", default=None, help=field_help("model_factory"))
@click.option("--trust-pickle", is_flag=True, default=None, help=field_help("trust_pickle"))
@click.option(
    "--input-shape",
    multiple=True,
    help="NAME:1x3x224x224: shapes for models without them, or fixing dynamic dims.",
)
@click.option("--preprocess", default=None, help=field_help("preprocess"))
@click.option("--batch-axis", multiple=True, metavar="NAME:AXIS", help=field_help("batch_axes"))
@click.option(
    "--max-accuracy-drop", type=float, default=None, help=field_help("max_accuracy_drop", Budget)
)
@click.option(
    "--max-latency-ms", type=float, default=None, help=field_help("max_latency_ms", Budget)
)
@click.option("--max-size-mb", type=float, default=None, help=field_help("max_size_mb", Budget))
@click.option("--min-fidelity", type=float, default=None, help=field_help("min_fidelity", Budget))
@click.option("--min-sqnr", type=float, default=None, help=field_help("min_sqnr", Budget))
@click.option(
    "--max-metric-drop", type=float, default=None, help=field_help("max_metric_drop", Budget)
)
@click.option(
    "--default-floor/--no-default-floor", default=None, help=field_help("default_floor", Budget)
)
@click.option("--metric", default=None, metavar="PKG.MODULE:FUNCTION", help=field_help("metric"))
@click.option("--task", multiple=True, metavar="[OUTPUT=]KIND", help=TASK_HELP)
@click.option(
    "--target-option", "-O", multiple=True, metavar="KEY=VALUE", help=field_help("target_options")
)
@click.option(
    "--prune",
    "prune_ratio",
    type=float,
    default=None,
    metavar="RATIO",
    help=field_help("ratio", PruneConfig),
)
@click.option(
    "--prune-method",
    type=click.Choice(PRUNE_METHODS),
    default=None,
    help=field_help("method", PruneConfig) + " [default: l1]",
)
@click.option(
    "--prune-global", is_flag=True, default=None, help=field_help("global_ranking", PruneConfig)
)
@click.option(
    "--prune-exclude", multiple=True, metavar="NAME", help=field_help("exclude", PruneConfig)
)
@click.option("--prune-round-to", type=int, default=None, help=field_help("round_to", PruneConfig))
@click.option("--distill", is_flag=True, default=None, help=field_help("enabled", DistillConfig))
@click.option("--train", default=None, help=field_help("train"))
@click.option(
    "--epochs", type=int, default=None, help=field_help("epochs", DistillConfig) + " [default: 10]"
)
@click.option(
    "--lr", type=float, default=None, help=field_help("lr", DistillConfig) + " [default: 0.001]"
)
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help=field_help("batch_size", DistillConfig) + " [default: 64]",
)
@click.option(
    "--optimizer",
    type=click.Choice(OPTIMIZERS),
    default=None,
    help=field_help("optimizer", DistillConfig),
)
@click.option(
    "--temperature",
    type=float,
    default=None,
    help=field_help("temperature", DistillConfig) + " [default: 4]",
)
@click.option(
    "--alpha", type=float, default=None, help=field_help("alpha", DistillConfig) + " [default: 0.7]"
)
@click.option(
    "--patience",
    type=int,
    default=None,
    help=field_help("patience", DistillConfig) + " [default: 3]",
)
@click.option(
    "--distill-features", multiple=True, metavar="NAME", help=field_help("features", DistillConfig)
)
@click.option("--seed", type=int, default=None, help=field_help("seed") + " [default: 0]")
@click.option("--output", "-o", default=None, help=field_help("output") + " [default: out]")
@track_option
@handle_errors
def run_command(model: str | None, recipe_path: Path | None, track: str | None, **flags) -> None:
    """Compress MODEL for a target and verify it against budgets."""
    sources = {k: "flag" for k in _budget_keys() if flags.get(k) is not None}
    recipe = _build_recipe(model, recipe_path, flags)
    tracker = open_tracker(track)
    from compressor.pipeline import run_pipeline
    from compressor.report import render_report

    report = run_pipeline(recipe, sources)
    render_report(report, CONSOLE)
    log_tracked_run(tracker, recipe.output)
    CONSOLE.print(f"outputs in {recipe.output}/ (report.json, recipe.toml)")
    sys.exit(0 if report.passed else 1)


def _precision_flag(flags: dict) -> str | None:
    chosen = [name for name in ("int8", "fp16", "dynamic") if flags.pop(name)]
    if len(chosen) > 1:
        raise UsageError(f"Choose one precision; got {', '.join('--' + c for c in chosen)}.")
    return chosen[0] if chosen else None


def _build_recipe(model: str | None, recipe_path: Path | None, flags: dict) -> Recipe:
    flags["precision"] = _precision_flag(flags)
    base = Recipe()
    if recipe_path:  # paths inside a recipe are relative to the recipe file
        base = load_recipe(recipe_path).with_absolute_paths(recipe_path.absolute().parent)
    budget = dataclasses.replace(
        base.budget, **{k: flags[k] for k in _budget_keys() if flags.get(k) is not None}
    )
    prune = _nested(base.prune, flags, PRUNE_FLAGS)
    distill = _nested(base.distill, flags, DISTILL_FLAGS)
    int8 = _nested(base.int8, flags, INT8_FLAGS)
    updates = {
        "model": model,
        "train": flags["train"],
        "seed": flags["seed"],
        "target": flags["target"],
        "precision": flags["precision"],
        "calib": flags["calib"],
        "eval": flags["eval_"],
        "calib_samples": flags["calib_samples"],
        "calibration": flags["calibration"],
        "auto": flags["auto"],
        "tune_trials": flags["tune_trials"],
        "tune_time": flags["tune_time"],
        "tune_objective": flags["tune_objective"],
        "threads": flags["threads"],
        "warmup": flags["warmup"],
        "runs": flags["runs"],
        "model_factory": flags["model_factory"],
        "trust_pickle": flags["trust_pickle"],
        "output": flags["output"],
        "input_shapes": _shape_option(flags["input_shape"]) or None,
        "batch_axes": _batch_axes(flags["batch_axis"]) or None,
        "preprocess": flags["preprocess"],
        "target_options": _key_values(flags["target_option"]) or None,
        "task": parse_task_option(flags["task"]) or None,
        "metric": flags["metric"],
    }
    updates = {k: v for k, v in updates.items() if v is not None and v != ""}
    recipe = dataclasses.replace(
        base, budget=budget, prune=prune, distill=distill, int8=int8, **updates
    )
    if not recipe.model:
        raise UsageError(
            "No model given. Usage: compress MODEL [--target onnx --int8 ...]; see compress --help."
        )
    return recipe.with_absolute_paths(Path.cwd())


def _budget_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(Budget)]


PRUNE_FLAGS = {
    "prune_ratio": "ratio",
    "prune_method": "method",
    "prune_global": "global_ranking",
    "prune_exclude": "exclude",
    "prune_round_to": "round_to",
}
INT8_FLAGS = {
    "equalize": "equalize",
    "smooth": "smooth",
    "smooth_alpha": "smooth_alpha",
    "smooth_mul": "smooth_mul",
    "bias_correction": "bias_correction",
}
DISTILL_FLAGS = {
    "distill": "enabled",
    "epochs": "epochs",
    "lr": "lr",
    "batch_size": "batch_size",
    "optimizer": "optimizer",
    "temperature": "temperature",
    "alpha": "alpha",
    "patience": "patience",
    "distill_features": "features",
}


def _nested(config: object, flags: dict, names: dict[str, str]) -> object:
    """A pass config with the flags that were given (None or empty means not given)."""
    given = {field: flags[flag] for flag, field in names.items() if flags[flag] not in (None, ())}
    return dataclasses.replace(config, **given)


@main.command("example")
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
    from compressor.example import claim_example_folder, make_example
    from compressor.pipeline import run_pipeline
    from compressor.report import render_report

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


@main.command("targets")
@click.option("--options", "show_options", is_flag=True, help="Also list each target's options.")
def targets_command(show_options: bool) -> None:
    """List targets and whether they work on this machine (and why not)."""
    from rich.table import Table

    from targets.registry import describe_targets, get_target

    table = Table("target", "available", "precisions", "details")
    for name, ok, why in describe_targets():
        precisions, details = "", why
        if ok:
            caps = get_target(name).capabilities
            precisions = ", ".join(caps.precisions)
            details = "; ".join([why, *caps.notes])
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", precisions, escape(details))
    CONSOLE.print(table)
    if show_options:
        for name, ok, _ in describe_targets():
            options_type = get_target(name).options_type if ok else None
            if options_type is None:
                continue
            opts = Table("option (-O KEY=VALUE)", "default", "meaning", title=f"{name} options")
            for f in dataclasses.fields(options_type):
                opts.add_row(f.name, repr(f.default), f.metadata.get("help", ""))
            CONSOLE.print(opts)


def _register_ops_commands() -> None:
    """bench, verify and package live in cli_ops.py to keep this file small."""
    from compressor.cli_ops import OPS_COMMANDS

    for command in OPS_COMMANDS:
        main.add_command(command)
    from compressor.cli_debug import debug_command

    main.add_command(debug_command)


_register_ops_commands()
main.add_command(sweep_command)
