"""The precision step of a compress run: the fp32 ONNX made fp16, dynamic or static int8 (Q/DQ),
one function per precision in a table, before the target lowers it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from calibration.dataset import Dataset
from compressor.passes.qat import quantize_with_ranges
from compressor.passes.quantize import convert_fp16, quantize_int8_dynamic, quantize_int8_static
from compressor.progress import STDERR, progress_bar
from compressor.recipe import Recipe
from compressor.tuning.fallback import mark_fp16
from compressor.tuning.search import TuneInputs, auto_int8
from foundation.errors import DataError, UsageError
from targets.base import Target
from targets.registry import reference_runner


@dataclass(frozen=True)
class PrecisionJob:
    """What one precision step reads and where it writes."""

    recipe: Recipe
    target: Target
    options: object  # the target's parsed -O options
    fp32: Path  # the cleaned-up fp32 ONNX
    dst: Path  # where the step writes its ONNX
    calib: Dataset | None
    evaluation: Dataset | None
    qat_ranges: dict | None = None  # --qat's learned activation ranges, imposed on the Q/DQ


def _keep_fp32(job: PrecisionJob) -> tuple[Path, dict]:
    return job.fp32, {}


def _to_fp16(job: PrecisionJob) -> tuple[Path, dict]:
    return job.dst, convert_fp16(job.fp32, job.dst)


def _to_dynamic_int8(job: PrecisionJob) -> tuple[Path, dict]:
    return job.dst, quantize_int8_dynamic(job.fp32, job.dst)


def _to_static_int8(job: PrecisionJob) -> tuple[Path, dict]:
    """Calibrated Q/DQ in the target's scheme, in whole batches of the model's fixed batch."""
    recipe, calib = job.recipe, job.calib
    fixed = reference_runner(job.fp32).fixed_batch
    if fixed and len(calib) % fixed:
        if len(calib) < fixed:
            raise DataError(f"The model takes batches of {fixed}: give at least {fixed} samples.")
        calib = calib.take(len(calib) - len(calib) % fixed)  # whole batches only
    batch = calibration_batch(recipe.calibration, len(calib), fixed)
    scheme = job.target.quant_scheme(job.options)
    STDERR.print(f"[bold]quantize[/] int8 ({scheme.description}; {recipe.calibration})")
    if job.qat_ranges is not None:
        config = recipe.int8
        info = quantize_with_ranges(job.fp32, job.dst, calib, scheme, batch, job.qat_ranges, config)
        return job.dst, info
    if recipe.auto:
        data = (calib, job.evaluation)
        given = TuneInputs(job.target, job.options, scheme, batch, fixed)
        info = auto_int8(recipe, job.fp32, job.dst, data, given)
        return job.dst, info
    with progress_bar("calibrate", len(calib)) as advance:
        info = quantize_int8_static(
            job.fp32,
            job.dst,
            calib,
            scheme,
            recipe.calibration,
            batch,
            advance,
            recipe.int8_plan,
            config=recipe.int8,
        )
    if recipe.int8_fp16:
        info["fp16_nodes"] = mark_fp16(job.dst, recipe.int8_fp16)
    return job.dst, info


PRECISION_STEPS: dict[str, Callable[[PrecisionJob], tuple[Path, dict]]] = {
    "fp32": _keep_fp32,
    "fp16": _to_fp16,
    "dynamic": _to_dynamic_int8,
    "int8": _to_static_int8,
}


def apply_precision(
    recipe: Recipe,
    target: Target,
    options: object,
    fp32: Path,
    data: tuple[Dataset | None, Dataset | None],
    work: Path,
    qat_ranges: dict | None = None,
) -> tuple[Path, dict]:
    """The ONNX to lower and what the step did; fp32 itself when the target makes the
    precision's weights while lowering. data is (calibration, evaluation)."""
    precision = recipe.precision
    if precision not in PRECISION_STEPS:
        raise UsageError(f"Precision '{precision}' is not one of {list(PRECISION_STEPS)}.")
    if precision != "fp32" and precision in target.capabilities.lowers_from_fp32:
        return fp32, {"in_lowering": f"{target.name} makes {precision} weights itself"}
    dst = work / f"model.{precision}.onnx"
    job = PrecisionJob(recipe, target, options, fp32, dst, *data, qat_ranges)
    return PRECISION_STEPS[precision](job)


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
