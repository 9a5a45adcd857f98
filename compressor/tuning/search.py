"""--auto: keep the fewest int8 blocks float that make the budgets hold, measured trial by trial.

Trial 0 is the default int8 (placement rules only). If it misses a budget, one float pass
ranks the blocks (compressor/tuning/sensitivity.py) and greedy fallback keeps the worst 1, 2, 4, …
blocks float until a trial holds, then bisects down to the fewest. Every trial is lowered for
the target and run in its runtime (compressor/tuning/trials.py: LiteRT for tflite, onnxruntime
for onnx, the labelled onnxruntime proxy for TensorRT without a GPU) on held-back samples (the
eval set, or the last quarter of the calibration samples when there is none) and timed
interleaved with the fp32 artifact. With --tune-objective latency or --max-latency-ms, blocks
measured slower in int8 than in float (compressor/tuning/block_latency.py) are left float first. On
targets with native fp16 the chosen plan is tried once more with its float blocks in fp16.
All trials, the accuracy/latency/size Pareto front and the chosen plan go into the report.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.activations import collect_stats
from calibration.dataset import Dataset
from calibration.ranges import range_method
from compressor.judging.budget import Budget
from compressor.judging.evaluate import top1_accuracy
from compressor.judging.fidelity import measure_fidelity
from compressor.passes.quantize import prepare_int8, quantize_int8_static
from compressor.progress import STDERR
from compressor.recipe import Int8Config, Recipe
from compressor.tuning.block_latency import (
    PROBE_SECONDS,
    latency_mode,
    slower_in_int8,
    time_blocks,
)
from compressor.tuning.choice import choose_trial, meets_budget, pareto_front
from compressor.tuning.fallback import fallback_precision, mark_fp16
from compressor.tuning.sensitivity import block_sensitivity
from compressor.tuning.trials import TargetRuntime, describe_runtime, interleaved_ms, run_outputs
from targets.base import QuantScheme, Runner, Target
from targets.options import TargetOptions


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
    objective: str = "accuracy"  # latency: fastest passing plan, slow int8 blocks left float
    fallback: str = "fp32"  # the precision float blocks may also try (fp16 where declared)
    int8: Int8Config = Int8Config()  # the held-back graph steps (equalize, smooth, ranges)


@dataclass
class Reference:
    """fp32 outputs on the held-back samples and the fp32 artifact's runner, timed beside
    every trial."""

    outputs: list[np.ndarray]
    labels: np.ndarray | None
    runner: Runner


def judge_outputs(
    reference: list[np.ndarray], outputs: list[np.ndarray], labels: np.ndarray | None
) -> dict:
    """A trial's quality by the verdict's own rules: the worst output's mean per-sample cosine
    (compressor/judging/fidelity.py) and the top-1 drop of the first output
    (compressor/judging/evaluate.py), so --auto and the final verdict never disagree."""
    pairs = zip(reference, outputs, strict=True)
    result = {"cosine": round(min(measure_fidelity(r, o).cosine_mean for r, o in pairs), 5)}
    before, after = top1_accuracy(reference[0], labels), top1_accuracy(outputs[0], labels)
    if before is not None and after is not None:
        result["accuracy_drop"] = round(100 * (before - after), 3)
    return result


def measure_trial(
    runner: Runner,
    size: int,
    ref: Reference,
    data: Dataset,
    fixed: int | None = None,
    judged: Runner | None = None,
) -> dict:
    """Quality (accuracy drop, cosine) and latency of one lowered candidate on held-back data;
    quality from `judged` when given (the candidate in the scheme's int8 arithmetic)."""
    outputs = run_outputs(judged or runner, data, fixed or 64)
    base, latency = interleaved_ms([ref.runner, runner], data.feeds(slice(0, fixed or 1)))
    result = {
        **judge_outputs(ref.outputs, outputs, ref.labels),
        "latency_ms": round(latency, 4),
        "latency_vs_fp32": round(latency / max(base, 1e-9), 3),
        "size_bytes": size,
    }
    return result


def split_trial_samples(calib: Dataset, evaluation: Dataset | None) -> tuple[Dataset, Dataset]:
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
    """Runs the trials of one --auto search in the target's runtime and remembers them."""

    def __init__(
        self,
        fp32: Path,
        data: tuple[Dataset, Dataset],
        scheme: QuantScheme,
        runtime: TargetRuntime,
        config: TuneConfig,
    ) -> None:
        self.fp32, (self.calib, self.held), self.scheme = fp32, data, scheme
        self.runtime, self.config, self.work = runtime, config, runtime.work
        self.trials: list[dict] = []
        self.stats: dict | None = None
        self.infos: list[dict] = []  # each trial's quantize info (what was kept float, why)
        self.base: Runner | None = None  # trial 0 (every block int8), timed beside each probe
        self.graph, self.method, self.steps = fp32, config.method, {}  # set by the first trial

    def reference(self) -> Reference:
        """The fp32 model lowered for the target: its outputs and its runner."""
        runner, _ = self.runtime.open(self.fp32, "fp32", "fp32")
        outputs = run_outputs(runner, self.held, self.config.fixed_batch or 64)
        return Reference(outputs, self.held.labels, runner)

    def candidate(self, plan: tuple[str, ...], fp16: bool, name: str) -> tuple[Path, dict]:
        """The Q/DQ ONNX with plan's blocks float (fp16 weights when fp16), calibrated once."""
        path, config = self.work / f"{name}.onnx", self.config
        if self.stats is None:  # equalize/smooth/choose ranges once for every trial
            self._prepare()
        info = quantize_int8_static(
            self.graph, path, self.calib, self.scheme, self.method, config.batch_size,
            plan=plan, stats=self.stats, config=config.int8,
        )  # fmt: skip
        info.update({"steps": self.steps} if self.steps else {})
        if fp16:
            info["fp16_nodes"] = mark_fp16(path, plan)
        return path, info

    def _prepare(self) -> None:
        """The held-back graph steps, then the range statistics every trial shares."""
        config = self.config
        prepared = prepare_int8(
            self.fp32, self.work / "prepare", self.calib, self.scheme, config.method,
            config.batch_size, config.int8,
        )  # fmt: skip
        self.graph, self.method, self.steps = prepared.graph, prepared.method, prepared.steps
        histograms = range_method(self.method).histograms
        self.stats = collect_stats(self.graph, self.calib, config.batch_size, histograms)

    def open_plan(self, plan: tuple[str, ...], name: str) -> Runner:
        """A probe: plan's blocks float, lowered for the target and opened."""
        return self.runtime.open(self.candidate(plan, False, name)[0], "int8", name)[0]

    def trial(self, plan: tuple[str, ...], blocks: int, ref: Reference, fp16: bool = False) -> dict:
        """Quantize, lower and measure one plan; its record (kept in self.trials)."""
        started, name = time.perf_counter(), f"trial{len(self.trials)}"
        path, info = self.candidate(plan, fp16, name)
        self.infos.append(info)
        runner, size = self.runtime.open(path, "int8", name)
        judged = self.runtime.judging_runner(path, runner, self.scheme.arithmetic)
        measured = measure_trial(runner, size, ref, self.held, self.config.fixed_batch, judged)
        if judged is not runner:
            judged.close()
        if self.base is None:
            self.base = runner
        else:
            runner.close()
        fallback = "fp16" if fp16 else "fp32"
        record = {"trial": len(self.trials), "float_blocks": blocks, "fallback": fallback}
        record |= {"plan": list(plan), **measured}
        record["passed"] = meets_budget(record, self.config.budget)
        record["seconds"] = round(time.perf_counter() - started, 2)
        self.trials.append(record)
        return record

    def budget_left(self, started: float) -> bool:
        """Whether --tune-trials and --tune-time allow another trial."""
        config = self.config
        return len(self.trials) < config.trials and time.perf_counter() - started < config.time_s


def _plan(scores: list, k: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for s in scores[:k] for n in (s.tensor, *s.readers)))


def tune_int8(
    fp32: Path,
    dst: Path,
    data: tuple[Dataset, Dataset | None],
    scheme: QuantScheme,
    config: TuneConfig,
    runtime: TargetRuntime,
) -> dict:
    """Search a plan, write the chosen trial's Q/DQ ONNX to dst and return the tuning record.

    data is (calibration samples, evaluation samples or None)."""
    started = time.perf_counter()
    runtime.work.mkdir(parents=True, exist_ok=True)
    tuner = Tuner(fp32, split_trial_samples(*data), scheme, runtime, config)
    ref = tuner.reference()
    first = tuner.trial((), 0, ref)
    timed = latency_mode(config.objective, config.budget.max_latency_ms)
    scores = (
        block_sensitivity(tuner.graph, runtime.work / "trial0.onnx", tuner.calib, config.batch_size)
        if timed or not first["passed"]
        else []
    )
    timings = _time_blocks(tuner, scores) if timed else []
    slow = set(slower_in_int8(timings))
    ordered = [s for s in scores if s.tensor in slow] + [s for s in scores if s.tensor not in slow]
    start = first
    if slow and tuner.budget_left(started):
        start = tuner.trial(_plan(ordered, len(slow)), len(slow), ref)
    if not start["passed"]:
        _search(tuner, ordered, len(slow), ref, started)
    chosen = choose_trial(tuner.trials, sorted(slow), config.objective)
    if config.fallback == "fp16" and chosen["plan"] and tuner.budget_left(started):
        tuner.trial(tuple(chosen["plan"]), chosen["float_blocks"], ref, fp16=True)
        chosen = choose_trial(tuner.trials, sorted(slow), config.objective)
    record = _finish(tuner, chosen, dst, started)
    record.update(describe_runtime(ref.runner, runtime.target.name))
    record["block_timings"] = [t.to_dict() for t in timings]
    record["blocks_probed"] = f"{len(timings)} of {len(scores)}" if timed else "none"
    record["slower_in_int8"] = sorted(slow)
    record["sensitivity"] = [s.to_dict() for s in scores[:10]]
    return record


def _time_blocks(tuner: Tuner, scores: list) -> list:
    """Per-block probes in the target runtime, within PROBE_SECONDS or half of --tune-time."""
    blocks = [(s.tensor, _plan([s], 1)) for s in scores]
    feed = tuner.held.feeds(slice(0, tuner.config.fixed_batch or 1))
    deadline = time.perf_counter() + min(PROBE_SECONDS, tuner.config.time_s / 2)
    return time_blocks(blocks, tuner.open_plan, tuner.base, feed, deadline)


def _search(tuner: Tuner, ordered: list, forced: int, ref: Reference, started: float) -> None:
    """Greedy fallback of the worst 1, 2, 4, … blocks (after the forced ones), then bisection."""
    total = len(ordered) - forced
    low, high, k = 0, None, 1
    while high is None and total and k <= total and tuner.budget_left(started):
        passed = tuner.trial(_plan(ordered, forced + k), forced + k, ref)["passed"]
        high = k if passed else None
        low, k = (k, 2 * k) if high is None else (low, k)
        if high is None and k > total and low < total:
            k = total  # last try: every block float
    while high is not None and high - low > 1 and tuner.budget_left(started):
        mid = (low + high) // 2
        passed = tuner.trial(_plan(ordered, forced + mid), forced + mid, ref)["passed"]
        low, high = (low, mid) if passed else (mid, high)


def _finish(tuner: Tuner, chosen: dict, dst: Path, started: float) -> dict:
    shutil.copyfile(tuner.work / f"trial{chosen['trial']}.onnx", dst)
    shutil.rmtree(tuner.work)
    info = tuner.infos[chosen["trial"]]
    return {
        "chosen": chosen["trial"],
        "chosen_info": info,
        "plan": chosen["plan"],
        "fp16_nodes": info.get("fp16_nodes", []),
        "fallback_precision": tuner.config.fallback,
        "met_budgets": chosen["passed"],
        "objective": tuner.config.objective,
        "judged_on": f"{len(tuner.held)} held-back samples ({tuner.held.source})",
        "trials": tuner.trials,
        "pareto_front": pareto_front(tuner.trials),
        "seconds": round(time.perf_counter() - started, 2),
    }


@dataclass(frozen=True)
class TuneInputs:
    """What the pipeline already resolved and hands down to --auto: the run's target (bound to
    its torch model where it lowers from torch), its parsed -O options, its int8 scheme, the
    calibration batch and the model's own fixed batch."""

    target: Target
    options: TargetOptions
    scheme: QuantScheme
    batch: int
    fixed_batch: int | None


def auto_int8(
    recipe: Recipe,
    fp32: Path,
    dst: Path,
    data: tuple[Dataset, Dataset | None],
    given: TuneInputs,
) -> dict:
    """The pipeline's --auto step: tune in the target's runtime, then describe the chosen model
    as quantize does."""
    runtime = TargetRuntime(given.target, given.options, recipe.threads, dst.parent / "tuning")
    config = TuneConfig(
        recipe.budget, recipe.tune_trials, recipe.tune_time, recipe.threads, recipe.calibration,
        given.batch, given.fixed_batch, recipe.tune_objective,
        fallback_precision(given.target), recipe.int8,
    )  # fmt: skip
    STDERR.print(f"[bold]tune[/] --auto: at most {config.trials} trials, {config.time_s:g} s")
    tuning = tune_int8(fp32, dst, data, given.scheme, config, runtime)
    chosen = tuning["trials"][tuning["chosen"]]
    STDERR.print(
        f"[bold]tune[/] chose trial {chosen['trial']} of {len(tuning['trials'])} "
        f"({tuning['runtime']}{', a proxy' if tuning['proxy'] else ''}): "
        f"{chosen['float_blocks']} block(s) float ({chosen['fallback']})"
        + ("" if tuning["met_budgets"] else " (no trial met the budgets)")
    )
    return {**tuning.pop("chosen_info"), "tuning": tuning}


def replay_recipe(recipe: Recipe, pass_info: dict) -> Recipe:
    """The recipe to save: after --auto, its chosen plan, so --recipe replays without search."""
    tuning = pass_info.get("tuning") if isinstance(pass_info, dict) else None
    if not tuning:
        return recipe
    return dataclasses.replace(
        recipe,
        auto=False,
        int8_plan=tuple(tuning["plan"]),
        int8_fp16=tuple(tuning["fp16_nodes"]),
    )
