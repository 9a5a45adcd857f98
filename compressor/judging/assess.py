"""Assess an artifact against its baseline: run both, compare every output, apply budgets and the
default floor (what `compress`, `compress verify` and the sweep all judge with)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from calibration.dataset import Dataset
from compressor.judging.budget import Budget, BudgetResult, check_budgets
from compressor.judging.confidence import paired_drop_interval
from compressor.judging.default_floor import check_floor
from compressor.judging.evaluate import EvalResult, evaluate, top1_correct
from compressor.judging.latency import LatencyStats, measure_latency, timing_feeds
from compressor.judging.output_records import OutputRecord, compare_outputs, worst_summary
from compressor.judging.sections import Section
from compressor.judging.user_metric import load_metric, score
from compressor.progress import progress_bar
from foundation.errors import UsageError
from targets.base import Runner

REPORT_SCHEMA_VERSION = 2  # 2: per-output records, default floor, budget sources, --metric


@dataclass(frozen=True)
class Measured:
    """What was measured for one runner."""

    runtime: str
    eval: EvalResult | None
    latency: LatencyStats
    size_bytes: int
    proxy_for: str | None = None

    def section(self, labelled: bool = True) -> Section:
        """The report section for this runner (accuracy left out when the data has no labels)."""
        return Section(
            runtime=self.runtime,
            proxy_for=self.proxy_for,
            accuracy=None if self.eval is None or not labelled else self.eval.accuracy,
            eval_samples=None if self.eval is None else self.eval.samples,
            size_bytes=self.size_bytes,
            latency=self.latency,
        )


def run_eval(runner: Runner, data: Dataset | None, label: str) -> EvalResult | None:
    """Evaluate with a progress bar; None when there is no data."""
    if data is None:
        return None
    with progress_bar(f"evaluate {label}", len(data)) as advance:
        return evaluate(runner, data, advance)


def measure_runners(
    runners: list[Runner],
    sizes: list[int],
    data: Dataset | None,
    labels: list[str],
    threads: int,
    warmup: int,
    runs: int,
) -> list[Measured]:
    """Evaluate each runner on data, then time them interleaved at batch 1."""
    evals = [run_eval(r, data, name) for r, name in zip(runners, labels, strict=True)]
    feeds = [timing_feeds(r, 1, data) for r in runners]
    with progress_bar("latency (interleaved)", runs) as advance:
        stats = measure_latency(runners, feeds, warmup, runs, threads, lambda: advance(1))
    return [
        Measured(r.runtime, e, s, size, r.proxy_for)
        for r, e, s, size in zip(runners, evals, stats, sizes, strict=True)
    ]


def check_judging_data(
    budget: Budget, metric: str | None, eval_data: str | None, samples: str | None
) -> None:
    """Refuse, before any work, output budgets and metrics the given data cannot measure
    (samples: the data outputs are compared on; the eval data, or for compress also --calib)."""
    for name in ("min_fidelity", "min_sqnr"):
        if getattr(budget, name) is not None and not samples:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} compares outputs on real samples: pass --eval DATA.")
    if (metric or budget.max_metric_drop is not None) and not eval_data:
        raise UsageError("--metric and --max-metric-drop score the eval data: pass --eval DATA.")
    if budget.max_metric_drop is not None and not metric:
        raise UsageError("--max-metric-drop needs --metric pkg.module:function to measure.")


@dataclass(frozen=True)
class AssessSettings:
    """How an artifact is judged: budgets (and where each came from), task rules, the metric."""

    budget: Budget = Budget()
    sources: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    metric: str | None = None


@dataclass(frozen=True)
class Assessment:
    """The verdict on one artifact: report sections, per-output records and every budget row."""

    baseline: Section
    compressed: Section
    outputs: tuple[OutputRecord, ...] | None
    budgets: tuple[BudgetResult, ...]

    @property
    def passed(self) -> bool:
        """True only when every budget, given or default, was measured and met."""
        return all(b.passed for b in self.budgets)


def assess(
    base: Measured,
    comp: Measured,
    settings: AssessSettings,
    labelled: bool = True,
    metric_data: dict | None = None,
    student: EvalResult | None = None,
) -> Assessment:
    """The one measuring path of `compress` and `compress verify`: every output compared by its
    rule, accuracy with its interval, the user's metric, then budgets and the default floor
    (student: the fp32 outputs after torch passes, for the floor's signal checks)."""
    base_s, comp_s = base.section(labelled), comp.section(labelled)
    records = compare_outputs(base.eval, comp.eval, settings.tasks)
    ci = _drop_interval(base.eval, comp.eval) if labelled else None
    comp_s = dataclasses.replace(
        comp_s, compared=True, outputs=records, fidelity=worst_summary(records), accuracy_drop_ci=ci
    )
    if settings.metric and base.eval is not None and metric_data is not None:
        metric = load_metric(settings.metric)
        base_s, comp_s = (
            dataclasses.replace(
                section,
                metric=score(metric, settings.metric, measured.eval.outputs, metric_data),
                metric_name=settings.metric,
            )
            for section, measured in ((base_s, base), (comp_s, comp))
        )
    budgets = check_budgets(
        settings.budget, base_s.to_json_dict(), comp_s.to_json_dict(), settings.sources
    )
    student_records = compare_outputs(student, comp.eval, settings.tasks) if student else None
    if student_records is not None:
        comp_s = dataclasses.replace(comp_s, outputs_vs_student=student_records)
    budgets += check_floor(records, settings.budget, settings.sources, student_records)
    return Assessment(base_s, comp_s, records, tuple(_proxy_notes(budgets, comp_s)))


def _proxy_notes(budgets: list[BudgetResult], comp: Section) -> list[BudgetResult]:
    """A latency measured in a stand-in runtime says so on its row."""
    if not comp.proxy_for:
        return budgets
    note = f"measured in {comp.runtime}, a proxy for {comp.proxy_for}"
    return [dataclasses.replace(b, note=note) if b.name == "max_latency_ms" else b for b in budgets]


def _drop_interval(base: EvalResult | None, comp: EvalResult | None) -> tuple[float, float] | None:
    if base is None or comp is None or base.labels is None:
        return None
    base_ok, comp_ok = top1_correct(base.first, base.labels), top1_correct(comp.first, comp.labels)
    return tuple(paired_drop_interval(base_ok, comp_ok))
