"""`compress verify`: the CI check of an artifact against its baseline, budgets and a stored report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from compressor.cli.common import CONSOLE, ERR, PATH, check_distinct, check_output, handle_errors
from compressor.cli.flags import BUDGET_FLAGS, REGRESSION_FLAGS, build, fields_of, flag, options
from compressor.judging.budget import Budget
from compressor.judging.regression import Regression
from compressor.limits import BUDGET_RANGES, REGRESSION_RANGES, check_fields
from compressor.recipe import Recipe, check_counts
from compressor.report import strict_json
from foundation.resources import check_threads

VERIFY_FLAGS = [
    flag(Recipe, "eval"),
    *BUDGET_FLAGS,
    flag(Recipe, "metric"),
    flag(Recipe, "task"),
    click.option(
        "--against", type=PATH, help="A stored report.json: also fail on regressions vs it."
    ),
    *REGRESSION_FLAGS,
    flag(Recipe, "threads"),
    flag(Recipe, "warmup"),
    flag(Recipe, "runs"),
    flag(Recipe, "input_shapes", help="NAME:1x3x224x224 for TorchScript baselines."),
    flag(Recipe, "model_factory"),
    flag(Recipe, "trust_pickle"),
    flag(
        Recipe,
        "preprocess",
        help="How an --eval image folder becomes inputs (same syntax as compress --preprocess).",
    ),
    flag(
        Recipe,
        "batch_axes",
        help="--eval arrays whose samples lie on another axis (same as compress --batch-axis).",
    ),
]
RECIPE_FLAGS = [f for f in VERIFY_FLAGS if not callable(f)]


@click.command("verify")
@click.argument("artifact", type=PATH)
@click.option(
    "--baseline", required=True, type=PATH, help="Original model (.pt2, TorchScript, .onnx)."
)
@options(VERIFY_FLAGS, field_default=True)
@click.option("--junit", type=PATH, help="Write a JUnit XML report (one testcase per budget).")
@click.option("--json", "json_path", type=PATH, help="Write the verify report as JSON.")
@handle_errors
def verify_command(
    artifact: Path, junit: Path | None, json_path: Path | None, **opts: object
) -> None:
    """CI check: run ARTIFACT in its runtime vs the baseline; exit 0 pass, 1 budget failed, 2 usage."""
    from compressor.report.junit import write_junit
    from compressor.report.render import render_report
    from compressor.report.staging import staged_file
    from compressor.verify import run_verify

    started = time.perf_counter()
    request = _check_request(artifact, junit, json_path, opts)
    report = run_verify(request)
    render_report(report, CONSOLE)
    if not report.budgets:
        ERR.print("[yellow]warning[/]: no budgets given; this check only proves the artifact runs.")
    if junit:
        write_junit(report, junit, time.perf_counter() - started)
    if json_path:
        with staged_file(json_path) as out:
            out.write((strict_json.dumps(report.to_json_dict(), indent=2) + "\n").encode())
    sys.exit(0 if report.passed else 1)


def _check_request(artifact: Path, junit: Path | None, json_path: Path | None, opts: dict):
    """The VerifyRequest of the flags, after refusing outputs that would overwrite an input."""
    from compressor.verify import VerifyRequest

    inputs = _verify_inputs(artifact, opts)
    for option, out in (("--junit", junit), ("--json", json_path)):
        check_output(out, option, inputs)
    if junit and json_path:
        check_distinct({"--junit": junit, "--json": json_path})
    budget = build(Budget, BUDGET_FLAGS, opts)
    check_fields(budget, BUDGET_RANGES)
    check_threads(opts["threads"])
    check_counts({key: opts[key] for key in ("runs", "warmup")})
    regression = build(Regression, REGRESSION_FLAGS, opts)
    check_fields(regression, REGRESSION_RANGES)
    settings = fields_of(Recipe, RECIPE_FLAGS, opts)
    settings["tasks"] = settings.pop("task")
    return VerifyRequest(artifact, budget=budget, regression=regression, **settings, **opts)


def _verify_inputs(artifact: Path, opts: dict) -> list[Path]:
    """Every file `compress verify` reads, which its outputs must not overwrite."""
    from compressor.model.artifacts import resolve_artifact

    paths = [artifact, opts["baseline"], *([opts["against"]] if opts.get("against") else [])]
    if opts.get("eval"):
        paths.append(Path(str(opts["eval"])))
    for given in (artifact, opts["baseline"]):
        if given.exists():
            file = resolve_artifact(given)
            paths += [file, file.parent / "report.json", file.parent / "recipe.toml"]
    return paths
