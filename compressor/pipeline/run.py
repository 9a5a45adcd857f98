"""The compress pipeline: load → export → cleanup → precision → lower → verdict → report.

Each step has its module: model_data (load), export and passes, precision, the target's lower,
run_verdict (measure and judge) and run_notes; this module runs them in order."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from calibration.layout import DataLayout
from calibration.preprocess import parse_preprocess
from compressor.judging.assess import check_judging_data
from compressor.judging.user_metric import metric_data
from compressor.limits import BUDGET_RANGES, DISTILL_RANGES, QAT_RANGES, check_fields
from compressor.model.data import RunData, data_shapes, first_sample, load_run_data
from compressor.model.dims import refuse_dynamic_dims, static_shapes
from compressor.model.export import export_onnx
from compressor.model.loading import LoadedModel, load_model
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.torch_passes import (
    apply_torch_passes,
    torch_passes,
    validate_torch_passes,
)
from compressor.pipeline.pass_metrics import measure_onnx_stages
from compressor.pipeline.precision import apply_precision
from compressor.pipeline.verdict import VerdictInputs, fp32_reference, judge_run, qdq_fidelity
from compressor.progress import STDERR
from compressor.recipe import CHOICES, COUNTS, Recipe, check_choices, check_counts
from compressor.report.notes import qdq_note, size_note
from compressor.report.render import write_report
from compressor.report.run_record import RECIPE, REPORT
from compressor.report.schema import Report
from compressor.report.staging import check_writable, previous_outputs, staged_output
from compressor.tuning.search import replay_recipe
from foundation.errors import UsageError
from foundation.resources import check_threads
from targets.base import Artifact, Runner, Target, TorchSource
from targets.registry import get_target


def validate_recipe(recipe: Recipe) -> tuple[Target, object]:
    """Reject impossible requests before any work starts; return the target and its options."""
    check_fields(recipe.budget, BUDGET_RANGES)
    check_fields(recipe.distill, DISTILL_RANGES)
    check_fields(recipe.qat, QAT_RANGES, "--qat-")
    target = get_target(recipe.target)
    options = target.check_request(recipe.precision, dict(recipe.target_options))
    _check_model_kind(recipe, target)
    validate_torch_passes(recipe)
    parse_preprocess(recipe.preprocess)  # a bad --preprocess fails before any work
    _check_preprocess_applies(recipe)
    _check_int8_request(recipe)
    _check_judging_data(recipe)
    _check_run_settings(recipe)
    check_writable(Path(recipe.output))
    _check_inputs_outside_output(recipe)
    return target, options


def _check_int8_request(recipe: Recipe) -> None:
    """Static int8 needs calibration data; --auto and a plan need static int8."""
    if recipe.precision == "int8" and not recipe.calib:
        raise UsageError(
            "--int8 needs calibration data to choose activation ranges: pass --calib DATA "
            "(an .npz with arrays named after the model inputs, an image folder, or "
            "pkg.module:function), or use --dynamic for weight-only int8."
        )
    if (recipe.auto or recipe.int8_plan) and recipe.precision != "int8":
        raise UsageError("--auto (and an int8_plan) tune static int8: add --int8 and --calib.")
    if not recipe.tune_time > 0:
        raise UsageError("--tune-time must be above 0 seconds.")


def _check_model_kind(recipe: Recipe, target: Target) -> None:
    """A target that lowers from the torch module cannot start from an ONNX file."""
    if target.capabilities.needs_torch_module and Path(recipe.model).suffix.lower() == ".onnx":
        raise UsageError(
            f"Target '{target.name}' lowers from the torch model ({target.capabilities.runtime} "
            f"starts from torch, not ONNX), and '{recipe.model}' is ONNX: pass the model as "
            ".pt2 (torch.export), TorchScript or a state dict with --model-factory."
        )


def _check_judging_data(recipe: Recipe) -> None:
    """Budgets and the --metric need the data that can measure them."""
    if recipe.budget.max_accuracy_drop is not None and not recipe.eval:
        raise UsageError("--max-accuracy-drop needs labelled evaluation data: pass --eval DATA.")
    check_judging_data(recipe.budget, recipe.metric, recipe.eval, recipe.eval or recipe.calib)


def _check_run_settings(recipe: Recipe) -> None:
    """Choices (calibration, tune objective) and counts (threads, runs, warm-up, calibration
    samples, trials) within their ranges, however the recipe was built."""
    check_choices({key: getattr(recipe, key) for key in CHOICES})
    check_counts({key: getattr(recipe, key) for key in COUNTS})
    check_threads(recipe.threads)


def _check_inputs_outside_output(recipe: Recipe) -> None:
    """Outputs replace files in -o DIR: refuse when the model or data would be among them."""
    out_dir = Path(recipe.output).resolve()
    for value in (recipe.model, recipe.calib, recipe.eval, recipe.train):
        if value and Path(value).exists() and Path(value).resolve().parent == out_dir:
            raise UsageError(
                f"'{value}' is inside the output folder '{recipe.output}', where outputs would "
                "overwrite it. Choose another -o DIR."
            )
    previous_outputs(out_dir)


def _check_preprocess_applies(recipe: Recipe) -> None:
    """--preprocess turns image files into arrays; recorded without images it would only
    mislead the device team (the manifest would list steps that were never verified)."""
    folders = [d for d in (recipe.calib, recipe.eval, recipe.train) if d and Path(d).is_dir()]
    if recipe.preprocess and not folders:
        raise UsageError(
            f"--preprocess '{recipe.preprocess}' applies to image folders only, and none of "
            "--calib/--eval/--train is one: .npz arrays and entry points are fed as they are. "
            "Remove --preprocess (record a device-side pipeline with `compress package "
            "--preprocess` instead)."
        )


@dataclass(frozen=True)
class PreparedRun:
    """A validated recipe with its target, the loaded model and its data."""

    recipe: Recipe
    target: Target
    options: object  # the target's parsed -O options
    model: LoadedModel
    data: RunData


@dataclass(frozen=True)
class Exported:
    """The fp32 ONNX graphs made from the model (in the stage's .work folder)."""

    raw: Path  # the export as it came out
    fp32: Path  # after cleanup: what the precision step reads
    original: Path  # the input model's fp32 ONNX (fp32 itself without torch passes)
    passes: dict  # what normalize, the torch passes and cleanup did
    pass_notes: list[str]  # the torch passes' measured effect


@dataclass(frozen=True)
class Converted:
    """Everything from export to the lowered artifact, and how long it took."""

    exported: Exported
    compressed_onnx: Path  # what the target lowered
    artifact: Artifact
    reference: tuple[Runner, int] | None  # fp32 lowered for the target, when not fp32
    precision_info: dict  # what the precision step did (replayed by the saved recipe)
    passes: dict  # what every pass did, the precision step last
    seconds: float


def run_pipeline(recipe: Recipe, budget_sources: dict[str, str] | None = None) -> Report:
    """Run the whole recipe; outputs land in recipe.output only if nothing failed.

    budget_sources says which budgets came from flags; the rest came from the recipe."""
    target, options = validate_recipe(recipe)
    started = time.perf_counter()
    run = _prepare(recipe, target, options)
    student, torch_info = run.model, {}
    if torch_passes(recipe):
        data = run.data
        student, torch_info = apply_torch_passes(
            recipe, run.model, data.specs, data.calib, data.evaluation
        )
    with staged_output(Path(recipe.output)) as stage:
        work = stage / ".work"
        work.mkdir()
        made = _convert(run, student, torch_info, stage, work)
        report = judge_run(_verdict_inputs(run, made, budget_sources))
        report = _complete_report(run, made, report, started)
        shutil.rmtree(work)
        (stage / RECIPE).write_text(replay_recipe(recipe, made.precision_info).to_toml())
        write_report(report.to_json_dict(), stage / REPORT)
    return report


def _prepare(recipe: Recipe, target: Target, options: object) -> PreparedRun:
    """Load the model and its data; refuse dynamic dims the target cannot lower."""
    model = load_model(recipe.model, recipe.model_factory, recipe.trust_pickle)
    data = load_run_data(recipe, model)
    if not target.capabilities.dynamic_dims:
        shapes = data_shapes(data.calib, data.evaluation)
        refuse_dynamic_dims(target.name, data.specs, recipe.batch_axes, shapes)
    return PreparedRun(recipe, target, options, model, data)


def _convert(
    run: PreparedRun, student: LoadedModel, torch_info: dict, stage: Path, work: Path
) -> Converted:
    """Export, then the fp32 reference (lowered first: an unsupported op fails before
    calibrating), the precision step and lowering into the stage."""
    recipe = run.recipe
    converting = time.perf_counter()
    exported = _export(run, student, torch_info, work)
    target = run.target.bind_torch(torch_source(student, run.data))
    reference = None
    if recipe.precision != "fp32":
        reference = fp32_reference(target, exported.fp32, run.options, work, recipe.threads)
    data = (run.data.calib, run.data.evaluation)
    ranges = torch_info.get("qat", {}).get("ranges")
    compressed_onnx, info = apply_precision(
        recipe, target, run.options, exported.fp32, data, work, ranges
    )
    STDERR.print(f"[bold]lower[/] → {target.name} ({recipe.precision})")
    artifact = target.lower(compressed_onnx, recipe.precision, stage, run.options)
    passes = {**exported.passes, recipe.precision: info}
    seconds = time.perf_counter() - converting
    return Converted(exported, compressed_onnx, artifact, reference, info, passes, seconds)


def torch_source(model: LoadedModel, data: RunData) -> TorchSource | None:
    """The torch model the ONNX graphs are exported from, for targets that lower from torch."""
    if not model.is_torch:
        return None
    sample = first_sample(data.judging, data.specs)
    return TorchSource(model.module, tuple(data.specs), sample)


def _export(run: PreparedRun, student: LoadedModel, torch_info: dict, work: Path) -> Exported:
    """The student as cleaned-up fp32 ONNX, checked against the model on the first sample;
    with torch passes also the input model's ONNX, and what the passes did to it."""
    model, specs = run.model, run.data.specs
    STDERR.print(f"[bold]export[/] {model.path.name} ({student.kind}) → ONNX")
    normalized: dict = {}
    sample = first_sample(run.data.judging, specs)
    raw = export_onnx(student, specs, work / "exported.onnx", sample, normalized)
    fp32 = work / "model.fp32.onnx"
    cleanup = cleanup_onnx(raw, fp32)
    original, pass_notes = fp32, []
    if torch_info:
        original = work / "original.fp32.onnx"
        cleanup_onnx(export_onnx(model, specs, work / "original.onnx", sample), original)
        pass_notes = measure_onnx_stages(
            torch_info, original, fp32, run.data.evaluation, run.recipe
        )
    passes = {**({"normalize": normalized} if normalized else {}), **torch_info}
    return Exported(raw, fp32, original, {**passes, "cleanup": cleanup}, pass_notes)


def _verdict_inputs(
    run: PreparedRun, made: Converted, budget_sources: dict[str, str] | None
) -> VerdictInputs:
    """What the verdict step measures, with the eval data's extra arrays for --metric."""
    recipe, exported = run.recipe, made.exported
    layout = DataLayout(recipe.batch_axes, static_shapes(run.model.inputs))
    extras = metric_data(recipe.metric, recipe.eval, run.data.specs, run.data.evaluation, layout)
    return VerdictInputs(
        recipe=recipe,
        target=run.target,
        model=run.model,
        data=run.data,
        metric_data=extras,
        fp32=exported.fp32,
        original=exported.original,
        exported=exported.raw,
        artifact=made.artifact,
        reference=made.reference,
        budget_sources=budget_sources,
        passes=made.passes,
    )


def _complete_report(run: PreparedRun, made: Converted, report: Report, started: float) -> Report:
    """The verdict with what the passes did, every note, the int8 lowering check and timings."""
    recipe, target, artifact = run.recipe, run.target, made.artifact
    report = replace(report, passes=made.passes)
    qdq = None
    if recipe.precision == "int8" and not target.capabilities.runs_qdq_graph:
        qdq = qdq_fidelity(made.compressed_onnx, target, artifact, run.data.judging, recipe)
    notes = [*run.model.notes, *made.exported.pass_notes, *report.notes, *size_note(report)]
    notes += qdq_note(target.name, qdq)
    return replace(
        report,
        qdq_reference=qdq,
        artifact=artifact.path.name,
        extra_files=tuple(p.name for p in artifact.extra_files),
        artifact_info=artifact.info,
        notes=(*notes, *artifact.info.get("notes", [])),
        elapsed_s=round(time.perf_counter() - started, 2),
        conversion_s=round(made.seconds, 3),
    )
