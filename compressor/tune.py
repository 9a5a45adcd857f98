"""--auto: keep the fewest int8 blocks float that make the budgets hold, measured trial by trial.

Trial 0 is the default int8 (placement rules only). If it misses a budget, one float pass
ranks the blocks (compressor/sensitivity.py) and greedy fallback keeps the worst 1, 2, 4, …
blocks float until a trial holds, then bisects down to the fewest. Every trial is quantized,
run in onnxruntime on held-back samples (the eval set, or the last quarter of the calibration
samples when there is none) and timed against fp32; all trials, the accuracy/latency/size
Pareto front and the chosen plan go into the report.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from calibration.activations import collect_stats
from calibration.dataset import Dataset
from calibration.ranges import range_method
from compressor.budget import Budget
from compressor.passes.quantize import quantize_int8_static
from compressor.progress import STDERR
from compressor.recipe import Recipe
from compressor.sensitivity import block_sensitivity
from targets.base import QuantScheme
from targets.registry import reference_runner

DEFAULT_DROP_POINTS = 1.0  # the aim without budgets: top-1 within 1 point, or
DEFAULT_COSINE = 0.99  # outputs within cosine 0.99 when there are no labels
TIMED_RUNS = 30


@dataclass(frozen=True)
class TuneConfig:
    """What --auto may spend and must meet."""

    budget: Budget
    trials: int = 12
    time_s: float = 600.0
    threads: int = 1
    method: str = "minmax"
    batch_size: int = 16
    fixed_batch: int | None = None  # the model's own batch size, when it has one


@dataclass
class Reference:
    """fp32 outputs and latency on the held-back samples, measured once."""

    outputs: list[np.ndarray]
    labels: np.ndarray | None
    latency_ms: float
    session: ort.InferenceSession | None = None  # timed again beside each trial


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _outputs(session: ort.InferenceSession, data: Dataset, batch: int = 64) -> list[np.ndarray]:
    parts = [session.run(None, inputs) for inputs, _ in data.batches(batch)]
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def _latency_ms(session: ort.InferenceSession, feed: dict, runs: int = TIMED_RUNS) -> float:
    return interleaved_ms([session], feed, runs)[0]


def interleaved_ms(sessions: list, feed: dict, runs: int = TIMED_RUNS) -> list[float]:
    """Median batch latency of each session, timed in turn run by run, so that load on a
    shared machine hits all of them alike and their ratio holds."""
    for session in sessions:
        for _ in range(3):
            session.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(runs):
        for session, spent in zip(sessions, times, strict=True):
            start = time.perf_counter()
            session.run(None, feed)
            spent.append(time.perf_counter() - start)
    return [1000 * statistics.median(t) for t in times]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return float(cos.mean())


def measure_trial(
    path: Path, ref: Reference, data: Dataset, threads: int, fixed: int | None = None
) -> dict:
    """Quality (accuracy drop, cosine) and latency of one candidate on the held-back samples."""
    session = _session(path, threads)
    outputs = _outputs(session, data, fixed or 64)
    feed = data.feeds(slice(0, fixed or 1))
    if ref.session is not None:
        base, latency = interleaved_ms([ref.session, session], feed)
    else:
        base, latency = ref.latency_ms, _latency_ms(session, feed)
    result = {
        "cosine": round(min(_cosine(r, o) for r, o in zip(ref.outputs, outputs, strict=True)), 5),
        "latency_ms": round(latency, 4),
        "latency_vs_fp32": round(latency / max(base, 1e-9), 3),
        "size_bytes": path.stat().st_size,
    }
    if ref.labels is not None:
        top1 = lambda out: float((out.argmax(-1) == ref.labels).mean())  # noqa: E731
        result["accuracy_drop"] = round(100 * (top1(ref.outputs[0]) - top1(outputs[0])), 3)
    return result


def meets_budget(trial: dict, budget: Budget) -> bool:
    """Whether a measured trial holds every budget set (or the default aim when none is)."""
    checks = []
    if budget.max_accuracy_drop is not None and "accuracy_drop" in trial:
        checks.append(trial["accuracy_drop"] <= budget.max_accuracy_drop)
    if budget.min_fidelity is not None:
        checks.append(trial["cosine"] >= budget.min_fidelity)
    if budget.max_latency_ms is not None:
        checks.append(trial["latency_ms"] <= budget.max_latency_ms)
    if budget.max_size_mb is not None:
        checks.append(trial["size_bytes"] / 1e6 <= budget.max_size_mb)
    if budget.max_accuracy_drop is None and budget.min_fidelity is None:
        default = trial.get("accuracy_drop", None)
        checks.append(
            default <= DEFAULT_DROP_POINTS
            if default is not None
            else trial["cosine"] >= DEFAULT_COSINE
        )
    return all(checks)


def pareto_front(trials: list[dict]) -> list[int]:
    """Trials no other trial beats on quality, latency and size at once."""

    def key(t: dict) -> tuple[float, float, float]:
        quality = -t.get("accuracy_drop", 0.0) if "accuracy_drop" in t else t["cosine"]
        return (quality, -t["latency_ms"], -t["size_bytes"])

    front = []
    for t in trials:
        k = key(t)
        beaten = any(
            all(a >= b for a, b in zip(key(o), k, strict=True)) and key(o) != k for o in trials
        )
        if not beaten:
            front.append(t["trial"])
    return front


def split_held_back(calib: Dataset, evaluation: Dataset | None) -> tuple[Dataset, Dataset]:
    """Calibration samples and the samples trials are judged on (never the same ones)."""
    if evaluation is not None:
        return calib, evaluation
    keep = max(1, len(calib) * 3 // 4)
    rest = {k: v[keep:] for k, v in calib.inputs.items()}
    if len(calib) < 2:
        return calib, calib
    labels = None if calib.labels is None else calib.labels[keep:]
    held = Dataset(rest, labels, calib.source + " (held back)", calib.shared, calib.batch_axes)
    return calib.take(keep), held


class Tuner:
    """Runs the trials of one --auto search and remembers them."""

    def __init__(
        self, fp32: Path, work: Path, calib: Dataset, held: Dataset, scheme: QuantScheme
    ) -> None:
        self.fp32, self.work, self.calib, self.held, self.scheme = fp32, work, calib, held, scheme
        self.trials: list[dict] = []
        self.stats: dict | None = None
        self.infos: list[dict] = []  # each trial's quantize info (what was kept float, why)

    def reference(self, threads: int, fixed: int | None) -> Reference:
        session = _session(self.fp32, threads)
        feed = self.held.feeds(slice(0, fixed or 1))
        outputs = _outputs(session, self.held, fixed or 64)
        return Reference(outputs, self.held.labels, _latency_ms(session, feed), session)

    def trial(self, plan: tuple[str, ...], blocks: int, config: TuneConfig, ref: Reference) -> dict:
        started = time.perf_counter()
        path = self.work / f"trial{len(self.trials)}.onnx"
        if self.stats is None:
            histograms = range_method(config.method).histograms
            self.stats = collect_stats(self.fp32, self.calib, config.batch_size, histograms)
        info = quantize_int8_static(
            self.fp32,
            path,
            self.calib,
            self.scheme,
            config.method,
            config.batch_size,
            plan=plan,
            stats=self.stats,
        )
        self.infos.append(info)
        measured = measure_trial(path, ref, self.held, config.threads, config.fixed_batch)
        record = {"trial": len(self.trials), "float_blocks": blocks, "plan": list(plan), **measured}
        record["passed"] = meets_budget(record, config.budget)
        record["seconds"] = round(time.perf_counter() - started, 2)
        self.trials.append(record)
        return record


def _plan(scores: list, k: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for s in scores[:k] for n in (s.tensor, *s.readers)))


def tune_int8(
    fp32: Path,
    dst: Path,
    calib: Dataset,
    evaluation: Dataset | None,
    scheme: QuantScheme,
    config: TuneConfig,
) -> dict:
    """Search a plan, write the chosen trial's model to dst and return the tuning record."""
    started = time.perf_counter()
    calib, held = split_held_back(calib, evaluation)
    work = dst.parent / "tuning"
    work.mkdir(exist_ok=True)
    tuner = Tuner(fp32, work, calib, held, scheme)
    ref = tuner.reference(config.threads, config.fixed_batch)
    first = tuner.trial((), 0, config, ref)
    scores = (
        []
        if first["passed"]
        else block_sensitivity(fp32, work / "trial0.onnx", calib, config.batch_size)
    )
    low, high, k = 0, None, 1
    while high is None and scores and k <= len(scores) and _budget_left(tuner, config, started):
        high = k if tuner.trial(_plan(scores, k), k, config, ref)["passed"] else None
        low, k = (k, 2 * k) if high is None else (low, k)
        if high is None and k > len(scores) and low < len(scores):
            k = len(scores)  # last try: every block float
    while high is not None and high - low > 1 and _budget_left(tuner, config, started):
        mid = (low + high) // 2
        passed = tuner.trial(_plan(scores, mid), mid, config, ref)["passed"]
        low, high = (low, mid) if passed else (mid, high)
    return _finish(tuner, scores, dst, started)


def _budget_left(tuner: Tuner, config: TuneConfig, started: float) -> bool:
    return len(tuner.trials) < config.trials and time.perf_counter() - started < config.time_s


def _finish(tuner: Tuner, scores: list, dst: Path, started: float) -> dict:
    """Choose the passing trial with the fewest float blocks (else the best quality one)."""
    passing = [t for t in tuner.trials if t["passed"]]
    if passing:
        chosen = min(passing, key=lambda t: (t["float_blocks"], t["latency_ms"]))
    else:
        chosen = max(tuner.trials, key=lambda t: (-t.get("accuracy_drop", 0.0), t["cosine"]))
    shutil.copyfile(tuner.work / f"trial{chosen['trial']}.onnx", dst)
    shutil.rmtree(tuner.work)
    return {
        "chosen": chosen["trial"],
        "chosen_info": tuner.infos[chosen["trial"]],
        "plan": chosen["plan"],
        "met_budgets": bool(passing),
        "judged_on": f"{len(tuner.held)} held-back samples ({tuner.held.source})",
        "latency_runtime": "onnxruntime CPU, batch 1, interleaved with fp32 (Q/DQ graph; a "
        "proxy for other targets)",
        "trials": tuner.trials,
        "pareto_front": pareto_front(tuner.trials),
        "sensitivity": [s.to_dict() for s in scores[:10]],
        "seconds": round(time.perf_counter() - started, 2),
    }


def auto_int8(
    recipe: Recipe,
    fp32: Path,
    dst: Path,
    calib: Dataset,
    evaluation: Dataset | None,
    scheme: QuantScheme,
    batch: int,
) -> dict:
    """The pipeline's --auto step: tune, then describe the chosen model as quantize does."""
    config = TuneConfig(
        recipe.budget, recipe.tune_trials, recipe.tune_time, recipe.threads, recipe.calibration
    )
    fixed = reference_runner(fp32).fixed_batch
    config = dataclasses.replace(config, batch_size=batch, fixed_batch=fixed)
    STDERR.print(f"[bold]tune[/] --auto: at most {config.trials} trials, {config.time_s:g} s")
    tuning = tune_int8(fp32, dst, calib, evaluation, scheme, config)
    chosen = tuning["trials"][tuning["chosen"]]
    STDERR.print(
        f"[bold]tune[/] chose trial {chosen['trial']} of {len(tuning['trials'])}: "
        f"{chosen['float_blocks']} block(s) float"
        + ("" if tuning["met_budgets"] else " (no trial met the budgets)")
    )
    return {**tuning.pop("chosen_info"), "tuning": tuning}


def replay_recipe(recipe: Recipe, pass_info: dict) -> Recipe:
    """The recipe to save: after --auto, its chosen plan, so --recipe replays without search."""
    tuning = pass_info.get("tuning") if isinstance(pass_info, dict) else None
    if not tuning:
        return recipe
    return dataclasses.replace(recipe, auto=False, int8_plan=tuple(tuning["plan"]))
