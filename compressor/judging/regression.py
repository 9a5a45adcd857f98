"""Regressions between releases: a new build measured against a stored report.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from compressor.judging.budget import Budget, BudgetResult
from foundation.errors import UsageError


@dataclass(frozen=True)
class Regression:
    """How much worse than a stored report.json a release may get before the check fails."""

    max_accuracy_regression: float | None = field(
        default=None,
        metadata={
            "help": "With --against: largest accuracy loss vs the stored report, points [default: "
            "--max-accuracy-drop, else 1.0]."
        },
    )
    max_latency_regression_pct: float = field(
        default=25.0,
        metadata={"help": "With --against: largest growth (%) of the artifact/baseline p50 ratio."},
    )
    max_size_regression_pct: float = field(
        default=10.0, metadata={"help": "With --against: largest growth (%) of the artifact size."}
    )
    max_sqnr_regression_db: float = field(
        default=3.0,
        metadata={"help": "With --against: largest fall (dB) of any output's mean SQNR."},
    )


def check_regressions(
    reg: Regression, budget: Budget, stored: dict, base: dict, comp: dict
) -> list[BudgetResult]:
    """Accuracy loss, latency growth (relative to the baseline, so machines cancel) and size."""
    old = stored["compressed"]
    results = []
    acc_limit = reg.max_accuracy_regression
    if acc_limit is None:
        acc_limit = budget.max_accuracy_drop if budget.max_accuracy_drop is not None else 1.0
    if old.get("accuracy") is not None:
        now = comp.get("accuracy")
        loss = None if now is None else round((old["accuracy"] - now) * 100.0, 4)
        note = "" if now is not None else "no labelled --eval data: accuracy not measured"
        results.append(
            BudgetResult(
                "max_accuracy_regression",
                acc_limit,
                loss,
                loss is not None and loss <= acc_limit,
                "points",
                note,
            )
        )
    growth, how = _latency_growth(stored, base, comp)
    limit = reg.max_latency_regression_pct
    passed = growth is not None and growth <= limit
    results.append(BudgetResult("max_latency_regression_pct", limit, growth, passed, "%", how))
    limit = reg.max_size_regression_pct
    if not old.get("size_bytes"):
        results.append(BudgetResult("max_size_regression_pct", limit, None, False, "%", UNUSABLE))
    else:
        size_growth = round((comp["size_bytes"] / old["size_bytes"] - 1.0) * 100.0, 4)
        results.append(
            BudgetResult("max_size_regression_pct", limit, size_growth, size_growth <= limit, "%")
        )
    results += output_regressions(reg, acc_limit, stored, comp)
    return [dataclasses.replace(r, source=_source(reg, r.name, r.limit)) for r in results]


def _source(reg: Regression, name: str, limit: float) -> str:
    """default when the limit is the documented default of its field, else flag."""
    fields = {f.name: f.default for f in dataclasses.fields(Regression)}
    default = fields.get(name, fields["max_accuracy_regression"])
    if name in ("max_accuracy_regression", "max_agreement_regression"):
        return "flag" if reg.max_accuracy_regression is not None else "default"
    return "default" if limit == default else "flag"


def output_regressions(
    reg: Regression, agreement_limit: float, stored: dict, comp: dict
) -> list[BudgetResult]:
    """Per output (matched by name): the largest fall of mean SQNR (dB) and of the task
    agreement (points) since the stored report; each row names the output that fell most."""
    old = {o["name"]: o for o in stored["compressed"].get("outputs") or []}
    pairs = [(o, old[o["name"]]) for o in comp.get("outputs") or [] if o["name"] in old]
    if not pairs:
        return []
    _check_same_outputs(pairs)
    # A stored null (an infinite SQNR or a missing figure, as strict JSON writes it) has nothing
    # to compare with; the stored values' forms were checked when the report was read.
    sqnr = [
        (_stored(p, "fidelity", "sqnr_mean_db") - o["fidelity"]["sqnr_mean_db"], o)
        for o, p in pairs
        if _stored(p, "fidelity", "sqnr_mean_db") is not None
    ]
    rows = (
        [_largest("max_sqnr_regression_db", sqnr, reg.max_sqnr_regression_db, "dB")] if sqnr else []
    )
    agreement = [
        ((p["headline_value"] - o["headline_value"]) * 100.0, o)
        for o, p in pairs
        if o["higher_is_better"]
        and o["headline"] == p.get("headline")
        and p.get("headline_value") is not None
    ]
    if agreement:
        rows.append(_largest("max_agreement_regression", agreement, agreement_limit, "points"))
    return rows


def _stored(output: dict, *path: str) -> object:
    for key in path:
        output = output.get(key) if isinstance(output, dict) else None
    return output


def _check_same_outputs(pairs: list[tuple[dict, dict]]) -> None:
    """Outputs of the same name but another per-sample shape (records hold no batch) mean
    another model: comparing their SQNR would be meaningless."""
    for now, then in pairs:
        if list(now.get("shape") or []) != list(then.get("shape") or []):
            raise UsageError(
                f"--against: output '{now['name']}' has shape {now.get('shape')} here but "
                f"{then.get('shape')} in the stored report, so it is not a report of the same "
                "model. Pass the report.json of an earlier build of this model."
            )


def _largest(name: str, falls: list[tuple[float, dict]], limit: float, unit: str) -> BudgetResult:
    fall, output = max(falls, key=lambda pair: pair[0])
    fall = round(fall, 4)
    note = (
        f"output '{output['name']}' ({output['headline']})"
        if unit == "points"
        else (f"output '{output['name']}'")
    )
    return BudgetResult(name, limit, fall, fall <= limit, unit, note)


UNUSABLE = (
    "the stored report has no usable figure to compare with (missing, zero or null); "
    "regenerate it with a compress or verify --json run"
)


def _latency_growth(stored: dict, base: dict, comp: dict) -> tuple[float | None, str]:
    """p50 growth in %, of artifact/baseline ratios when both runs timed the same baseline."""
    old_comp = (stored["compressed"].get("latency_ms") or {}).get("p50")
    old_base = ((stored.get("baseline") or {}).get("latency_ms") or {}).get("p50")
    now_comp, now_base = comp["latency_ms"]["p50"], base["latency_ms"]["p50"]
    if not old_comp:
        return None, UNUSABLE
    same_baseline = old_base and stored["baseline"].get("runtime") == base["runtime"]
    if same_baseline:
        growth = (now_comp / now_base) / (old_comp / old_base) - 1.0
        return round(growth * 100.0, 2), "p50 relative to the baseline timed in the same run"
    return round((now_comp / old_comp - 1.0) * 100.0, 2), "absolute p50 (machines may differ)"
