"""The fp32 graph made ready for int8: equalize, smooth, choose the range method.

Each step is fitted on three quarters of the calibration samples and kept only if the int8
model's output SQNR against fp32 rises on the held-back quarter; a graph rewrite must also
leave the float model's outputs equal (FLOAT_RTOL) or it is dropped. Every measurement goes
into the report (passes.int8.steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from calibration.activations import iterate_activations
from calibration.dataset import Dataset
from calibration.ranges import range_method
from compressor.passes.calibration_choice import AUTO, FALLBACK, choose_range_method
from compressor.passes.equalize import equalize_convs
from compressor.passes.held_back import (
    FLOAT_RTOL,
    MIN_GAIN_DB,
    HeldBackScore,
    Quantizer,
    float_error,
    split_held_back,
)
from compressor.passes.smooth import smooth_inputs, smoothable_inputs
from compressor.recipe import Int8Config
from targets.registry import EXACT_ARITHMETIC

MIN_HELD_BACK = 16  # fewer held-back samples make these choices noise (measured: 4 misled one)


@dataclass(frozen=True)
class Prepared:
    """The float graph to quantize, the range method to use, and what each step measured."""

    graph: Path
    method: str
    steps: dict


def _equalize(model: onnx.ModelProto, score: HeldBackScore, config: Int8Config) -> dict:
    info = equalize_convs(model)
    return info if info["pairs"] else {}


def _smooth(model: onnx.ModelProto, score: HeldBackScore, config: Int8Config) -> dict:
    names = [item.tensor for item in smoothable_inputs(model)]
    if not names:
        return {}
    absmax: dict[str, np.ndarray] = {}
    for values, _ in iterate_activations(score.current, score.fit, score.batch, names):
        for name, value in values.items():
            per = np.abs(value.reshape(-1, value.shape[-1])).max(0).astype(np.float64)
            absmax[name] = np.maximum(absmax.get(name, per), per)
    smoothed = smooth_inputs(model, absmax, config.smooth_alpha, config.smooth_mul)
    return {"inputs": smoothed} if smoothed else {}


# step name (an Int8Config switch) -> rewrite of the float model in place; {} = nothing to do
REWRITES: dict[str, Callable[[onnx.ModelProto, HeldBackScore, Int8Config], dict]] = {
    "equalize": _equalize,
    "smooth": _smooth,
}


def _try_rewrite(name: str, score: HeldBackScore, method: str, config: Int8Config) -> dict:
    """Rewrite score.current; adopt the result if float-equal and held-back SQNR rises."""
    model = onnx.load(str(score.current))
    info = REWRITES[name](model, score, config)
    if not info:
        return {"applied": False, "why": "nothing in the graph to apply it to"}
    candidate = score.work / f"{name}.onnx"
    onnx.save(model, str(candidate))
    error = float_error(score.reference, candidate, score.held, score.batch)
    info["float_max_relative_error"] = float(f"{error:.2e}")
    if error > FLOAT_RTOL:
        return {"applied": False, "why": "the rewrite changed the float model's outputs", **info}
    before = score.baseline(method)
    after = score.sqnr(candidate, method)
    keep = after > before + MIN_GAIN_DB
    if keep:
        score.current, score.measured = candidate, {method: after}
    sqnr = {"without": round(before, 2), "with": round(after, 2)}
    return {"applied": keep, **info, "held_back_sqnr_db": sqnr}


def prepare_for_int8(
    src: Path,
    work: Path,
    data: Dataset,
    method: str,
    batch: int,
    config: Int8Config,
    quantize: Quantizer,
    arithmetic: str = EXACT_ARITHMETIC,
) -> Prepared:
    """Run the enabled steps on src (fp32) and return the graph and method to quantize with,
    each judged in the scheme's int8 arithmetic."""
    wanted = [name for name in REWRITES if getattr(config, name)]
    if not wanted and method != AUTO:
        return Prepared(src, method, {})
    split = split_held_back(data, batch, MIN_HELD_BACK)
    if isinstance(split, str):
        steps = {"skipped": split}
        if method == AUTO:
            steps["calibration"] = {"chosen": FALLBACK, "why": split}
        return Prepared(src, FALLBACK if method == AUTO else method, steps)
    histograms = method == AUTO or range_method(method).histograms
    score = HeldBackScore(src, *split, batch, quantize, work, histograms, arithmetic=arithmetic)
    trial = FALLBACK if method == AUTO else method
    steps: dict = {
        name: _try_rewrite(name, score, trial, config)
        if name in wanted
        else {"applied": False, "why": "turned off"}
        for name in REWRITES
    }
    steps["held_back_samples"] = len(score.held)
    if method == AUTO:
        method, steps["calibration"] = choose_range_method(
            lambda m: score.sqnr(score.current, m), score.measured, MIN_GAIN_DB
        )
    return Prepared(score.current, method, steps)
