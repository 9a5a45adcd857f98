"""The verdict step of a compress run: the input model, the fp32 reference and the lowered artifact
measured in their runtimes on the same data, judged against the budgets, as a typed Report."""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from calibration.dataset import Dataset
from compressor import __version__
from compressor.judging.arithmetic import ArithmeticVerdict, arithmetic_notes, check_arithmetics
from compressor.judging.assess import (
    REPORT_SCHEMA_VERSION,
    AssessSettings,
    Measured,
    assess,
    measure_runners,
    run_eval,
)
from compressor.judging.budget import budget_sources_of
from compressor.judging.evaluate import EvalResult
from compressor.judging.output_records import compare_outputs, worst_summary
from compressor.judging.sections import QdqReference
from compressor.model.data import RunData
from compressor.model.loading import LoadedModel
from compressor.recipe import Recipe
from compressor.report.notes import verdict_notes
from compressor.report.schema import Report
from foundation.errors import CompressError, UnsupportedOp
from targets.base import Artifact, Runner, Target
from targets.registry import EXACT_ARITHMETIC, reference_runner, torch_runner


@dataclass(frozen=True)
class VerdictInputs:
    """What the verdict step measures: the run's model, data and the files it made."""

    recipe: Recipe
    target: Target
    model: LoadedModel  # the input model, run as the baseline
    data: RunData
    metric_data: dict | None  # labels and extra arrays of the eval data for --metric
    fp32: Path  # the fp32 ONNX that was quantized (after torch passes, if any)
    original: Path  # the input model's fp32 ONNX (fp32 itself without torch passes)
    exported: Path  # the raw export: the baseline's single-file ONNX copy for ONNX input
    artifact: Artifact  # the lowered artifact
    reference: tuple[Runner, int] | None  # fp32 reference runner and its size, when not fp32
    budget_sources: dict[str, str] | None  # which budgets came from flags
    passes: dict  # what the passes did (the notes read whether int8 quantized anything)


def judge_run(run: VerdictInputs) -> Report:
    """Measure baseline, fp32 reference (when there is one) and artifact; judge; a Report."""
    recipe, measured = run.recipe, _measure(run)
    arithmetic = _check_arithmetics(run, measured)
    settings = AssessSettings(
        recipe.budget, budget_sources_of(run.budget_sources), dict(recipe.task), recipe.metric
    )
    student = _student_eval(run, measured)
    has_eval = run.data.evaluation is not None
    verdict = assess(measured[0], measured[-1], settings, has_eval, run.metric_data, student)
    report = Report(
        command="compress",
        schema_version=REPORT_SCHEMA_VERSION,
        passed=verdict.passed,
        target=run.target.name,
        precision=recipe.precision,
        artifact=run.artifact.path.name,
        model=str(run.model.path),
        baseline=verdict.baseline,
        compressed=verdict.compressed,
        fp32_reference=measured[1].section() if run.reference is not None else None,
        budgets=verdict.budgets,
        environment=_environment(),
        passes=run.passes,
        int8_arithmetic=None if arithmetic is None else arithmetic.record,
    )
    notes = verdict_notes(report, not has_eval) + arithmetic_notes(report.int8_arithmetic)
    return replace(report, notes=tuple(notes))


def _check_arithmetics(run: VerdictInputs, measured: list[Measured]) -> ArithmeticVerdict | None:
    """int8: the artifact measured in every arithmetic of its CPU profile; the compressed
    Measured is replaced by the one judged (the worst arithmetic's figures)."""
    if run.recipe.precision not in ("int8", "dynamic"):
        return None
    recipe = run.recipe
    verdict = check_arithmetics(
        run.target, run.artifact.options, run.artifact.path, measured[-1],
        measured[0].eval, run.data.judging, dict(recipe.task), recipe.threads,
    )  # fmt: skip
    measured[-1] = verdict.measured
    return verdict


def _measure(run: VerdictInputs) -> list[Measured]:
    """Baseline, fp32 reference and artifact: evaluated on the same data, timed interleaved."""
    recipe = run.recipe
    runners = [_baseline_runner(run.model, run.data.specs, run.exported, recipe.threads)]
    runners.append(run.target.open_runner(run.artifact.path, recipe.threads, run.artifact.options))
    labels = ["baseline", "compressed"]
    sizes = [run.original.stat().st_size, run.artifact.size_bytes]
    if run.reference is not None:
        runners.insert(1, run.reference[0])
        labels.insert(1, "fp32 reference")
        sizes.insert(1, run.reference[1])
    return measure_runners(
        runners, sizes, run.data.judging, labels, recipe.threads, recipe.warmup, recipe.runs
    )


def fp32_reference(
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


def qdq_fidelity(
    qdq: Path, target: Target, artifact: Artifact, data: Dataset | None, recipe: Recipe
) -> QdqReference | None:
    """Fidelity and top-1 agreement of the lowered int8 artifact with onnxruntime running the
    same Q/DQ graph exactly (not on this CPU's kernels, which may saturate): tells lowering
    errors apart from quantization error."""
    if data is None:
        return None
    exact = reference_runner(qdq, recipe.threads, arithmetic=EXACT_ARITHMETIC)
    reference = run_eval(exact, data, "Q/DQ onnx")
    runner = target.open_runner(artifact.path, recipe.threads, artifact.options)
    lowered = run_eval(runner, data, "compressed")
    records = compare_outputs(reference, lowered, dict(recipe.task))
    return QdqReference("onnxruntime (Q/DQ, exact arithmetic)", worst_summary(records), records)


def _student_eval(run: VerdictInputs, measured: list[Measured]) -> EvalResult | None:
    """The fp32 model after torch passes (None without them), what quantization is judged by:
    the fp32 reference's evaluation, else onnxruntime on the fp32 ONNX."""
    if run.original == run.fp32:  # no torch pass changed the model
        return None
    if run.reference is not None:
        return measured[1].eval
    runner = reference_runner(run.fp32, run.recipe.threads)
    return run_eval(runner, run.data.judging, "after torch passes")


def _baseline_runner(model: LoadedModel, specs: list, onnx_copy: Path, threads: int) -> Runner:
    """Torch for torch models; for ONNX input, its single-file copy (external weights inlined)."""
    if model.is_torch:
        return torch_runner(model.module, specs, threads)
    return reference_runner(onnx_copy, threads)


def _environment() -> dict:
    return {
        "compressor": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
