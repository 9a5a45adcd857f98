"""The compress pipeline: load → export → cleanup → quantize → lower → verify → report."""

from __future__ import annotations

import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from calibration.dataset import Dataset
from calibration.layout import DataLayout
from calibration.loaders import load_dataset
from calibration.preprocess import parse_preprocess
from calibration.varied import VariedDataset
from compressor import __version__
from compressor.budget import budget_sources_of
from compressor.dims import check_batch_axes, refuse_dynamic_dims, static_shapes
from compressor.errors import CompressError, DataError, UnsupportedOp, UsageError
from compressor.evaluate import EvalResult
from compressor.export import export_onnx
from compressor.limits import BUDGET_RANGES, DISTILL_RANGES, check_fields, check_threads
from compressor.loading import (
    LoadedModel,
    given_shapes,
    load_model,
    model_inputs,
    resolve_input_specs,
)
from compressor.metric import metric_data
from compressor.outputs import compare_outputs, worst_summary
from compressor.pass_metrics import measure_onnx_stages
from compressor.passes.cleanup import cleanup_onnx
from compressor.passes.quantize import convert_fp16, quantize_int8_dynamic, quantize_int8_static
from compressor.passes.torch_passes import (
    apply_torch_passes,
    torch_passes,
    validate_torch_passes,
)
from compressor.progress import STDERR, progress_bar
from compressor.recipe import Recipe
from compressor.report import write_report
from compressor.report_model import QdqReference, Report, Section
from compressor.staging import check_writable, previous_outputs, staged_output
from compressor.tune import auto_int8, replay_recipe
from compressor.verify import (
    REPORT_SCHEMA_VERSION,
    VerifySettings,
    assess,
    check_judging_data,
    measure_runners,
    run_eval,
)
from targets.base import Artifact, Runner, Target, TensorSpec
from targets.registry import get_target, reference_runner, torch_runner

DEFAULT_CALIB_SAMPLES = 512


def validate_recipe(recipe: Recipe) -> tuple[Target, object]:
    """Reject impossible requests before any work starts; return the target and its options."""
    check_fields(recipe.budget, BUDGET_RANGES)
    check_fields(recipe.distill, DISTILL_RANGES)
    target = get_target(recipe.target)
    options = target.check_request(recipe.precision, dict(recipe.target_options))
    validate_torch_passes(recipe)
    parse_preprocess(recipe.preprocess)  # a bad --preprocess fails before any work
    _check_preprocess_applies(recipe)
    if recipe.precision == "int8" and not recipe.calib:
        raise UsageError(
            "--int8 needs calibration data to choose activation ranges: pass --calib DATA "
            "(an .npz with arrays named after the model inputs, an image folder, or "
            "pkg.module:function), or use --dynamic for weight-only int8."
        )
    if (recipe.auto or recipe.int8_plan) and recipe.precision != "int8":
        raise UsageError("--auto (and an int8_plan) tune static int8: add --int8 and --calib.")
    if recipe.tune_trials < 1 or not recipe.tune_time > 0:
        raise UsageError("--tune-trials must be at least 1 and --tune-time above 0 seconds.")
    if recipe.budget.max_accuracy_drop is not None and not recipe.eval:
        raise UsageError("--max-accuracy-drop needs labelled evaluation data: pass --eval DATA.")
    check_judging_data(recipe.budget, recipe.metric, recipe.eval, recipe.eval or recipe.calib)
    if recipe.threads < 1 or recipe.runs < 1 or recipe.warmup < 0:
        raise UsageError("--threads and --runs must be at least 1, --warmup at least 0.")
    check_threads(recipe.threads)
    if recipe.calib_samples is not None and recipe.calib_samples < 1:
        raise UsageError("--calib-samples must be at least 1.")
    check_writable(Path(recipe.output))
    _check_inputs_outside_output(recipe)
    return target, options


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


def run_pipeline(recipe: Recipe, budget_sources: dict[str, str] | None = None) -> Report:
    """Run the whole recipe; outputs land in recipe.output only if nothing failed.

    budget_sources says which budgets came from flags; the rest came from the recipe."""
    target, options = validate_recipe(recipe)
    out_dir = Path(recipe.output)
    started = time.perf_counter()
    model = load_model(recipe.model, recipe.model_factory, recipe.trust_pickle)
    calib, evaluation, specs = _load_data(recipe, model)
    if not target.capabilities.dynamic_dims:
        shapes = _data_shapes(calib, evaluation)
        refuse_dynamic_dims(target.name, specs, recipe.batch_axes, shapes)
    student, torch_info = model, {}
    if torch_passes(recipe):
        student, torch_info = apply_torch_passes(recipe, model, specs, calib, evaluation)
    with staged_output(out_dir) as stage:
        work = stage / ".work"
        work.mkdir()
        converting = time.perf_counter()
        STDERR.print(f"[bold]export[/] {model.path.name} ({student.kind}) → ONNX")
        normalized: dict = {}
        sample = _first_sample(evaluation if evaluation is not None else calib, specs)
        raw = export_onnx(student, specs, work / "exported.onnx", sample, normalized)
        fp32 = work / "model.fp32.onnx"
        cleanup = cleanup_onnx(raw, fp32)
        original, pass_notes = fp32, []
        if torch_info:
            original = work / "original.fp32.onnx"
            cleanup_onnx(export_onnx(model, specs, work / "original.onnx", sample), original)
            pass_notes = measure_onnx_stages(torch_info, original, fp32, evaluation, recipe)
        reference = None
        if recipe.precision != "fp32":  # lowered first: an unsupported op fails before calibrating
            reference = _fp32_reference(target, fp32, options, work, recipe.threads)
        compressed_onnx, pass_info = _apply_precision(
            recipe, target, options, fp32, calib, work, evaluation
        )
        STDERR.print(f"[bold]lower[/] → {target.name} ({recipe.precision})")
        artifact = target.lower(compressed_onnx, recipe.precision, stage, options)
        conversion_s = time.perf_counter() - converting
        report = _verify(
            recipe,
            target,
            model,
            specs,
            fp32,
            artifact,
            (evaluation, calib, _metric_data(recipe, model, specs, evaluation)),
            original,
            raw,
            reference,
            budget_sources,
        )
        passes = {**torch_info, "cleanup": cleanup, recipe.precision: pass_info}
        if normalized:
            passes = {"normalize": normalized, **passes}
        report = replace(report, passes=passes)
        notes = [*model.notes, *pass_notes, *report.notes, *_size_note(report)]
        qdq = None
        if recipe.precision == "int8" and target.name != "onnx":
            data = evaluation if evaluation is not None else calib
            qdq = _qdq_fidelity(compressed_onnx, target, artifact, data, recipe)
            if qdq:
                worst = qdq.fidelity
                notes.append(
                    f"{target.name} int8 vs onnxruntime on the same Q/DQ graph: worst output "
                    f"'{worst['worst_output']}' cosine {worst['cosine']:.5f}, "
                    f"SQNR {worst['sqnr_db']} dB."
                )
        report = replace(
            report,
            qdq_reference=qdq,
            artifact=artifact.path.name,
            extra_files=tuple(p.name for p in artifact.extra_files),
            artifact_info=artifact.info,
            notes=(*notes, *artifact.info.get("notes", [])),
            elapsed_s=round(time.perf_counter() - started, 2),
            conversion_s=round(conversion_s, 3),
        )
        shutil.rmtree(work)
        (stage / "recipe.toml").write_text(replay_recipe(recipe, pass_info).to_toml())
        write_report(report.to_json_dict(), stage / "report.json")
    return report


def _load_data(recipe: Recipe, model: LoadedModel) -> tuple[Dataset | None, Dataset | None, list]:
    inputs = model_inputs(model, recipe.input_shapes)
    given = given_shapes(recipe.input_shapes, [s.name for s in inputs])
    known = {s.name: s.shape for s in model.inputs if s.shape} | given
    image_shapes = {n: _image_shape(v) for n, v in known.items()}
    check_batch_axes(model.inputs, recipe.batch_axes)
    layout = DataLayout(recipe.batch_axes, static_shapes(model.inputs))
    prep = parse_preprocess(recipe.preprocess)
    raw_calib = load_dataset(recipe.calib, image_shapes, layout, prep) if recipe.calib else None
    raw_eval = load_dataset(recipe.eval, image_shapes, layout, prep) if recipe.eval else None
    data = [raw_calib, raw_eval]
    specs = resolve_input_specs(model, recipe.input_shapes, data, recipe.batch_axes)
    _check_varied(raw_calib, raw_eval, recipe.calibration)
    calib = raw_calib.bind(specs) if raw_calib else None
    if calib is not None:
        calib.check_finite()
        calib = calib.take(recipe.calib_samples or DEFAULT_CALIB_SAMPLES)
    evaluation = raw_eval.bind(specs) if raw_eval else None
    if evaluation is not None:
        evaluation.check_finite()
    if recipe.budget.max_accuracy_drop is not None and evaluation.labels is None:
        raise DataError(
            f"{evaluation.source} has no 'labels' array, so accuracy cannot be measured for "
            "--max-accuracy-drop. Add labels or use --min-fidelity."
        )
    return calib, evaluation, specs


def _check_varied(calib: Dataset | None, evaluation: Dataset | None, method: str) -> None:
    """Samples of several sizes calibrate (minmax) but cannot be compared output by output."""
    if isinstance(evaluation, VariedDataset):
        raise DataError(
            f"{evaluation.source}: evaluation samples have several sizes; outputs are compared "
            "sample by sample, so give --eval data of one size (e.g. --preprocess crop=...)."
        )
    if not isinstance(calib, VariedDataset):
        return
    if method not in ("minmax", "auto"):  # auto falls back to minmax on such samples
        raise UsageError(
            f"{calib.source} holds samples of several sizes: calibrate them with "
            f"--calibration minmax ({method} needs one size)."
        )
    if evaluation is None:
        raise UsageError(
            f"{calib.source} holds samples of several sizes, which calibrate but cannot be "
            "compared output by output: pass --eval data of one size to verify the result."
        )


def _image_shape(shape: tuple) -> tuple:
    """A model input shape for image folders: batch 1, dynamic dims None."""
    return tuple(
        d if isinstance(d, int) and d > 0 else (1 if i == 0 else None) for i, d in enumerate(shape)
    )


def _data_shapes(*datasets: Dataset | None) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes of the data's arrays, to suggest an --input-shape."""
    data = next((d for d in datasets if d is not None), None)
    return {k: v.shape[1:] for k, v in data.inputs.items()} if data is not None else {}


def _first_sample(data: Dataset | None, specs: list[TensorSpec]) -> dict[str, np.ndarray] | None:
    """The first samples of real data, one batch (the model's fixed batch, else 1), to check
    the normalised ONNX graph against the original."""
    if data is None:
        return None
    batches = {s.fixed_batch for s in specs}
    fixed = batches.pop() if len(batches) == 1 else None
    return data.repeated(fixed or 1)


def _apply_precision(
    recipe: Recipe,
    target: Target,
    options: object,
    fp32: Path,
    calib: Dataset | None,
    work: Path,
    evaluation: Dataset | None = None,
) -> tuple[Path, dict]:
    dst = work / f"model.{recipe.precision}.onnx"
    if recipe.precision == "fp32":
        return fp32, {}
    if recipe.precision in target.capabilities.lowers_from_fp32:
        return fp32, {"in_lowering": f"{target.name} makes {recipe.precision} weights itself"}
    if recipe.precision == "fp16":
        return dst, convert_fp16(fp32, dst)
    if recipe.precision == "dynamic":
        return dst, quantize_int8_dynamic(fp32, dst)
    fixed = reference_runner(fp32).fixed_batch
    if fixed and len(calib) % fixed:
        if len(calib) < fixed:
            raise DataError(f"The model takes batches of {fixed}: give at least {fixed} samples.")
        calib = calib.take(len(calib) - len(calib) % fixed)  # whole batches only
    batch = calibration_batch(recipe.calibration, len(calib), fixed)
    scheme = target.quant_scheme(options)
    STDERR.print(f"[bold]quantize[/] int8 ({scheme.description}; {recipe.calibration})")
    if recipe.auto:
        return dst, auto_int8(recipe, fp32, dst, calib, evaluation, scheme, batch)
    with progress_bar("calibrate", len(calib)) as advance:
        info = quantize_int8_static(
            fp32,
            dst,
            calib,
            scheme,
            recipe.calibration,
            batch,
            advance,
            recipe.int8_plan,
            config=recipe.int8,
        )
    return dst, info


def _fp32_reference(
    target: Target, fp32: Path, options: object, work: Path, threads: int
) -> tuple[Runner, int]:
    """fp32 lowered for the same target and run in the same runtime, so that speed-ups compare
    like with like; onnxruntime on the fp32 ONNX only when the target cannot lower fp32."""
    folder = work / "fp32-reference"
    folder.mkdir(exist_ok=True)
    for opts in (options, target.parse_options({})):
        try:
            artifact = target.lower(fp32, "fp32", folder, opts)
            return target.open_runner(artifact.path, threads, opts), artifact.size_bytes
        except UnsupportedOp:
            raise  # the compressed graph has the same ops: say so before any calibration
        except CompressError:
            continue  # e.g. an option that only applies to int8
    return reference_runner(fp32, threads), fp32.stat().st_size


def calibration_batch(method: str, samples: int, fixed: int | None) -> int:
    """Batch size for calibration: the model's fixed batch, else up to 16 samples a batch.

    onnxruntime's histogram calibrators (entropy, percentile) need equal batches, so they get
    the largest divisor of the sample count that is at most 16.
    """
    if fixed:
        return fixed
    if method == "minmax":
        return 16
    return max(d for d in range(1, 17) if samples % d == 0)


def _verify(
    recipe: Recipe,
    target: Target,
    model: LoadedModel,
    specs: list[TensorSpec],
    fp32: Path,
    artifact: Artifact,
    data_sets: tuple[Dataset | None, Dataset | None, dict | None],
    original: Path | None = None,
    exported: Path | None = None,
    reference: tuple[Runner, int] | None = None,
    budget_sources: dict[str, str] | None = None,
) -> Report:
    """Measure baseline (the input model; `original` is its ONNX when torch passes ran)."""
    evaluation, calib, extras = data_sets
    baseline = _baseline_runner(model, specs, exported or model.path, recipe.threads)
    compressed = target.open_runner(artifact.path, recipe.threads, artifact.options)
    runners: list[Runner] = [baseline, compressed]
    labels = ["baseline", "compressed"]
    sizes = [(original or fp32).stat().st_size, artifact.size_bytes]
    reference_needed = reference is not None
    if reference is not None:
        runners.insert(1, reference[0])
        labels.insert(1, "fp32 reference")
        sizes.insert(1, reference[1])
    data = evaluation if evaluation is not None else calib
    measured = measure_runners(
        runners, sizes, data, labels, recipe.threads, recipe.warmup, recipe.runs
    )
    settings = VerifySettings(
        recipe.budget,
        budget_sources_of(budget_sources),
        dict(recipe.task),
        recipe.metric,
    )
    student = None
    if original is not None and original != fp32:  # torch passes changed the model on purpose
        student = measured[1].eval if reference_needed else _student_eval(fp32, data, recipe)
    verdict = assess(measured[0], measured[-1], settings, evaluation is not None, extras, student)
    report = Report(
        command="compress",
        schema_version=REPORT_SCHEMA_VERSION,
        passed=verdict.passed,
        target=target.name,
        precision=recipe.precision,
        artifact=artifact.path.name,
        model=str(model.path),
        baseline=verdict.baseline,
        compressed=verdict.compressed,
        fp32_reference=measured[1].section() if reference_needed else None,
        budgets=verdict.budgets,
        environment=_environment(),
    )
    return replace(report, notes=tuple(_notes(report, evaluation is None)))


def _student_eval(fp32: Path, data: Dataset | None, recipe: Recipe) -> EvalResult | None:
    """The fp32 model after torch passes, run in onnxruntime: what quantization is judged by."""
    return run_eval(reference_runner(fp32, recipe.threads), data, "after torch passes")


def _metric_data(
    recipe: Recipe, model: LoadedModel, specs: list, evaluation: Dataset | None
) -> dict | None:
    """Labels and extra arrays of the eval data for --metric, read with the run's layout."""
    layout = DataLayout(recipe.batch_axes, static_shapes(model.inputs))
    return metric_data(recipe.metric, recipe.eval, specs, evaluation, layout)


def _qdq_fidelity(
    qdq: Path, target: Target, artifact: Artifact, data: Dataset | None, recipe: Recipe
) -> QdqReference | None:
    """Fidelity and top-1 agreement of the lowered int8 artifact with onnxruntime running the
    same Q/DQ graph: tells lowering errors apart from quantization error."""
    if data is None:
        return None
    reference = run_eval(reference_runner(qdq, recipe.threads), data, "Q/DQ onnx")
    runner = target.open_runner(artifact.path, recipe.threads, artifact.options)
    lowered = run_eval(runner, data, "compressed")
    records = compare_outputs(reference, lowered, dict(recipe.task))
    return QdqReference("onnxruntime (Q/DQ)", worst_summary(records), records)


def _baseline_runner(model: LoadedModel, specs: list, onnx_copy: Path, threads: int) -> Runner:
    """Torch for torch models; for ONNX input, its single-file copy (external weights inlined)."""
    if model.is_torch:
        return torch_runner(model.module, specs, threads)
    return reference_runner(onnx_copy, threads)


SLOW_REASONS = {
    "int8": "On small tensors the Q/DQ conversions cost more than int8 kernels save.",
    "dynamic": "Quantizing activations at run time costs more than it saves on small MatMuls.",
    "fp16": "This CPU runtime has no fast fp16 kernels; fp16 mainly halves the size here.",
}


def _size_note(report: Report) -> list[str]:
    """Say so when static int8 left most weights in float, and why."""
    comp = report.compressed
    fp32 = (report.fp32_reference or report.baseline).size_bytes
    info = report.passes.get("int8") or {}
    if report.precision != "int8" or comp.size_bytes <= 0.6 * fp32:
        return []
    ratio = comp.size_bytes / fp32
    if info.get("float_recurrent_ops"):
        why = "LSTM/GRU get no static Q/DQ; try --dynamic, which quantizes their weights."
    else:
        why = "on a model this small the Q/DQ scales and graph overhead outweigh the weights."
    return [f"int8 is {ratio:.0%} of the fp32 size: {why}"]


def _notes(report: Report, no_eval: bool) -> list[str]:
    comp, ref = report.compressed, report.fp32_reference
    notes = _speed_notes(report.precision, comp, ref)
    base_acc, comp_acc = report.baseline.accuracy, comp.accuracy
    if base_acc is not None and comp_acc is not None and base_acc - comp_acc > 0.05:
        gated = any(b.name == "max_accuracy_drop" for b in report.budgets)
        notes.append(
            f"WARNING: top-1 fell {100 * (base_acc - comp_acc):.1f} points "
            f"({100 * base_acc:.2f}% → {100 * comp_acc:.2f}%)"
            + ("." if gated else "; no --max-accuracy-drop budget gates this run.")
        )
    if no_eval:
        notes.append(
            "No --eval data: fidelity was measured on the calibration samples, "
            "or only latency and size when there were none."
        )
    if comp.proxy_for:
        notes.append(f"Measured in {comp.runtime} as a PROXY for {comp.proxy_for}.")
    return notes


def _speed_notes(precision: str, comp: Section, ref: Section | None) -> list[str]:
    """How the compressed artifact's p50 compares with fp32 in the same runtime."""
    if ref is None:
        return []
    mine, fp32 = round(comp.latency.p50, 4), round(ref.latency.p50, 4)
    if mine > fp32:
        return [
            f"{precision} is SLOWER than fp32 in {comp.runtime} here: p50 "
            f"{mine:.3f} ms vs {fp32:.3f} ms "
            f"({mine / fp32:.2f}× the fp32 time). {SLOW_REASONS.get(precision, '')}"
        ]
    return [f"{precision} runs {fp32 / max(mine, 1e-9):.2f}× the speed of fp32 in {comp.runtime}."]


def _environment() -> dict:
    return {
        "compressor": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
