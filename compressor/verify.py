"""`compress verify`: an artifact checked against budgets now, and against a stored report for
regressions (the CI check). Measuring and judging themselves live in compressor/judging/assess.py."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from calibration.dataset import Dataset
from calibration.preprocess import parse_preprocess
from compressor.bundle.manifest import artifact_precision, target_of
from compressor.judging.assess import (
    REPORT_SCHEMA_VERSION,
    AssessSettings,
    Measured,
    assess,
    check_judging_data,
    run_eval,
)
from compressor.judging.budget import Budget
from compressor.judging.latency import measure_latency, timing_feeds
from compressor.judging.regression import Regression, check_regressions
from compressor.judging.sections import Section
from compressor.judging.user_metric import metric_data
from compressor.model.artifacts import artifact_size, open_artifact, resolve_artifact
from compressor.model.data import load_data_for
from compressor.progress import progress_bar
from compressor.report.host_check import remeasure
from compressor.report.run_record import load_stored_report, sibling_report
from compressor.report.schema import Report
from foundation.errors import DataError, UsageError
from targets.base import Runner


@dataclass(frozen=True)
class VerifyRequest:
    """What `compress verify` was asked to check."""

    artifact: Path
    baseline: Path
    eval: str | None = None
    budget: Budget = Budget()
    against: Path | None = None
    regression: Regression = Regression()
    threads: int = 1
    warmup: int = 10
    runs: int = 100
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    model_factory: str | None = None
    trust_pickle: bool = False
    tasks: dict[str, str] = field(default_factory=dict)
    metric: str | None = None
    preprocess: str | None = None
    batch_axes: dict[str, int] = field(default_factory=dict)


def run_verify(req: VerifyRequest) -> Report:
    """Run artifact and baseline in their runtimes, apply budgets and regressions; a report."""
    req = dataclasses.replace(
        req,
        artifact=resolve_artifact(Path(req.artifact)),
        baseline=resolve_artifact(Path(req.baseline)),
    )
    stored = load_stored_report(req.against) if req.against else None
    _check_request(req, stored)
    data = _load_eval(req, stored)
    measured, inputs, runtime = _measure(req, data)
    settings = AssessSettings(req.budget, tasks=req.tasks, metric=req.metric)
    extras = metric_data(req.metric, req.eval, inputs, data)
    verdict = assess(measured[0], measured[1], settings, True, extras)
    bound = data.bind(inputs) if data is not None else None
    arithmetic, host_notes = remeasure(req.artifact, measured, bound, req.tasks, req.threads)
    base = dataclasses.replace(verdict.baseline, size_of=req.baseline.name)
    comp = verdict.compressed
    comp = dataclasses.replace(comp, proxy_for=comp.proxy_for or _recorded_proxy(req.artifact))
    budgets, notes = list(verdict.budgets), _size_and_proxy_notes(req, comp) + host_notes
    target = target_of(req.artifact) or runtime
    if stored is not None:
        base_d, comp_d = base.to_json_dict(), comp.to_json_dict()
        budgets += check_regressions(req.regression, req.budget, stored, base_d, comp_d)
        notes += _stored_notes(stored, comp, req.threads) + _mismatch_notes(stored, target, comp)
    return Report(
        command="verify",
        schema_version=REPORT_SCHEMA_VERSION,
        passed=all(b.passed for b in budgets),
        target=target,
        precision=artifact_precision(req.artifact),
        artifact=str(req.artifact),
        model=str(req.baseline),
        against=str(req.against) if req.against else None,
        baseline=base,
        compressed=comp,
        budgets=tuple(budgets),
        notes=tuple(notes),
        int8_arithmetic=arithmetic,
    )


def _measure(req: VerifyRequest, data: Dataset | None) -> tuple[list, list, str]:
    """Baseline and artifact measured in turn; the artifact's input specs and runtime."""
    baseline = open_artifact(
        req.baseline, req.threads, data, req.input_shapes, req.model_factory, req.trust_pickle
    )
    compressed = open_artifact(req.artifact, req.threads, data, req.input_shapes)
    sizes = [artifact_size(req.baseline), artifact_size(req.artifact)]
    try:
        measured = measure_pair([baseline, compressed], sizes, data, req)
    finally:
        baseline.close()
        compressed.close()
    return measured, compressed.inputs, compressed.runtime


def _size_and_proxy_notes(req: VerifyRequest, comp: Section) -> list[str]:
    """Why the baseline size differs from compress's, and a proxy runtime said plainly."""
    notes = [
        f"Baseline size is of {req.baseline.name} (the baseline file itself); `compress` "
        "reports the fp32 ONNX export's size instead, so size ratios differ between the two."
    ]
    if comp.proxy_for:
        notes.append(f"Measured in {comp.runtime} as a PROXY for {comp.proxy_for}.")
    return notes


def _recorded_proxy(artifact: Path) -> str | None:
    """The runtime this artifact ships for when its own report says it was verified by proxy."""
    return (sibling_report(artifact).get("compressed") or {}).get("proxy_for")


def measure_pair(
    runners: list[Runner], sizes: list[int], data: Dataset | None, req: VerifyRequest
) -> list[Measured]:
    """Evaluate each runner on data bound to its own input names, then time them interleaved."""
    labels = ["baseline", "artifact"]
    bound = [data.bind(r.inputs) if data is not None else None for r in runners]
    evals = [run_eval(r, d, n) for r, d, n in zip(runners, bound, labels, strict=True)]
    feeds = [timing_feeds(r, 1, d) for r, d in zip(runners, bound, strict=True)]
    with progress_bar("latency (interleaved)", req.runs) as advance:
        stats = measure_latency(runners, feeds, req.warmup, req.runs, req.threads, advance)
    return [
        Measured(r.runtime, e, s, size, r.proxy_for)
        for r, e, s, size in zip(runners, evals, stats, sizes, strict=True)
    ]


def _check_request(req: VerifyRequest, stored: dict | None = None) -> None:
    if stored is not None and stored["compressed"].get("accuracy") is not None and not req.eval:
        raise UsageError(
            f"--against '{req.against}' recorded accuracy, so the regression check needs it "
            "measured now: pass --eval DATA (labelled, like the stored run's)."
        )
    if req.threads < 1 or req.runs < 1 or req.warmup < 0:
        raise UsageError("--threads and --runs must be at least 1, --warmup at least 0.")
    if req.budget.max_accuracy_drop is not None and not req.eval:
        raise UsageError("--max-accuracy-drop needs labelled evaluation data: pass --eval DATA.")
    check_judging_data(req.budget, req.metric, req.eval, req.eval)


def _load_eval(req: VerifyRequest, stored: dict | None = None) -> Dataset | None:
    if not req.eval:
        return None
    data = load_data_for(
        req.eval,
        req.baseline,
        req.input_shapes,
        req.model_factory,
        req.trust_pickle,
        parse_preprocess(req.preprocess),
        req.batch_axes,
    )
    data.check_finite()
    if (
        stored is not None
        and stored["compressed"].get("accuracy") is not None
        and data.labels is None
    ):
        raise DataError(
            f"{data.source} has no 'labels' array, but --against '{req.against}' recorded "
            "accuracy: pass labelled --eval data so the accuracy regression can be checked."
        )
    if req.budget.max_accuracy_drop is not None and data.labels is None:
        raise DataError(
            f"{data.source} has no 'labels' array, so accuracy cannot be measured for "
            "--max-accuracy-drop. Add labels or use --min-fidelity."
        )
    return data


def _stored_notes(stored: dict, comp: Section, threads: int) -> list[str]:
    """What differs between the stored run (JSON) and this one that a reader should weigh."""
    notes = []
    old = stored["compressed"]
    if comp.outputs and not old.get("outputs"):
        notes.append(
            f"The stored report (schema {stored.get('schema_version', 1)}) has no per-output "
            "records, so outputs were not compared with it; store a report from this version."
        )
    if old.get("eval_samples") and comp.eval_samples != old["eval_samples"]:
        notes.append(
            f"The stored report measured accuracy on {old['eval_samples']} samples, this run on "
            f"{comp.eval_samples}: compare like with like."
        )
    old_threads = (old.get("latency_ms") or {}).get("threads")
    if old_threads and old_threads != threads:
        notes.append(f"The stored report timed {old_threads} thread(s), this run {threads}.")
    return notes


def _mismatch_notes(stored: dict, target: str, comp: Section) -> list[str]:
    """Warn when --against compares artifacts of different targets or runtimes."""
    notes = []
    if stored.get("target") and stored["target"] != target:
        notes.append(
            f"WARNING: the stored report is for target {stored['target']}, this artifact for "
            f"{target}: the regression check compares different targets."
        )
    old_runtime = stored["compressed"].get("runtime")
    if old_runtime and old_runtime != comp.runtime:
        notes.append(
            f"WARNING: the stored report ran in {old_runtime}, this run in {comp.runtime}: "
            "latency and accuracy are not like for like."
        )
    return notes
