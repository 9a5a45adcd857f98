"""The default fidelity floor: what every output must keep even when no budget was given.

Each check takes the worst output, names it, and becomes one budget row whose source is
`default`; --min-fidelity and --min-sqnr replace their default limit (source `flag` or
`recipe`), --no-default-floor drops the defaults. The numbers are documented in docs/verification.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from compressor.judging.budget import Budget, BudgetResult
from compressor.judging.output_records import OutputRecord
from compressor.judging.task_rules import DECISIVE_TOP


@dataclass(frozen=True)
class FidelityFloor:
    """Limits every output meets by default (measured healthy runs clear them with margin)."""

    min_cosine: float = field(default=0.98, metadata={"help": "Mean per-sample cosine."})
    min_sqnr_db: float = field(default=15.0, metadata={"help": "Mean per-sample SQNR, dB."})
    min_channel_sqnr_db: float = field(
        default=10.0,
        metadata={
            "help": "SQNR of the worst channel over all samples, dB (a gated classifier: of "
            "the classes in a top 5 of the original or the artifact)."
        },
    )
    max_collapse_share: float = field(
        default=0.0, metadata={"help": "Share of samples whose output collapsed to a constant."}
    )
    min_agreement: float = field(
        default=0.9, metadata={"help": "The task rule's agreement (top-1, per step, per pixel)."}
    )
    max_relative_error: float = field(
        default=0.1, metadata={"help": "Relative error of regression (one value) outputs."}
    )


DEFAULT_FLOOR = FidelityFloor()


def _agreement(r: OutputRecord) -> float | None:
    return r.headline_value if r.higher_is_better and r.gated else None


def _relative_error(r: OutputRecord) -> float | None:
    return None if r.higher_is_better or not r.gated else r.headline_value


# floor field -> (budget name, value of one output (None: not applicable), unit,
#                 True when lower is better, the Budget field (flag) that replaces the default,
#                 True for signal checks, which torch passes move to the student's outputs)
FLOOR_CHECKS: dict[
    str, tuple[str, Callable[[OutputRecord], float | None], str, bool, str, bool]
] = {
    "min_cosine": (
        "min_fidelity",
        lambda r: r.fidelity.cosine_mean,
        "cosine",
        False,
        "min_fidelity",
        True,
    ),
    "min_sqnr_db": ("min_sqnr", lambda r: r.fidelity.sqnr_mean_db, "dB", False, "min_sqnr", True),
    "min_channel_sqnr_db": (
        "min_channel_sqnr",
        lambda r: r.fidelity.worst_channel_sqnr_db,
        "dB",
        False,
        "",
        True,
    ),
    "max_collapse_share": (
        "max_collapse_share",
        lambda r: r.fidelity.collapse_share,
        "",
        True,
        "",
        True,
    ),
    "min_agreement": ("min_task_agreement", _agreement, "", False, "", False),
    "max_relative_error": ("max_relative_error", _relative_error, "", True, "", False),
}
STUDENT_NOTE = "; vs the fp32 model after the torch passes"


def check_floor(
    records: tuple[OutputRecord, ...] | None,
    budget: Budget,
    sources: dict[str, str] | None = None,
    student: tuple[OutputRecord, ...] | None = None,
    floor: FidelityFloor = DEFAULT_FLOOR,
) -> list[BudgetResult]:
    """One row per floor check over all outputs: the worst output's value against the limit.

    records compare the artifact with the original model. When torch passes (prune, distill)
    changed the model on purpose, student compares it with their fp32 result: the signal checks
    (cosine, SQNR, channels, collapse) use those, task agreement stays against the original."""
    sources = sources or {}
    rows = []
    if records is None and budget.default_floor:
        note = "outputs not compared: pass --eval DATA (or --no-default-floor)"
        rows.append(BudgetResult("default_floor", 1.0, None, False, "", note, "default"))
    for key, (name, value_of, unit, lower, flag, signal) in FLOOR_CHECKS.items():
        given = getattr(budget, flag) if flag else None
        if given is None and (records is None or not budget.default_floor):
            continue
        if given is not None:
            limit, source = given, sources.get(flag, "flag")
        else:
            limit, source = getattr(floor, key), "default"
        against = student if signal and student is not None else records
        row = _worst(against, name, value_of, unit, lower, limit, source)
        if row is not None and against is student:
            row = dataclasses.replace(row, note=row.note + STUDENT_NOTE)
        if row is not None:
            rows.append(row)
    return rows


def _worst(
    records: tuple[OutputRecord, ...] | None,
    name: str,
    value_of: Callable[[OutputRecord], float | None],
    unit: str,
    lower: bool,
    limit: float,
    source: str,
) -> BudgetResult | None:
    """The row for one check: the worst applicable output, or None when none applies."""
    if records is None:
        return BudgetResult(name, limit, None, False, unit, "outputs not compared", source)
    values = [(v, r) for r in records if (v := value_of(r)) is not None]
    if not values:
        return None
    value, record = (max if lower else min)(values, key=lambda pair: pair[0])
    passed = value <= limit if lower else value >= limit
    note = f"worst output '{record.name}'"
    if name in ("min_task_agreement", "max_relative_error"):
        note += f" ({record.task}: {record.headline})"
    elif name == "min_channel_sqnr":
        note += f", channel {record.fidelity.worst_channel}" + _channel_note(record, passed)
    return BudgetResult(name, limit, value, passed, unit, note, source)


def _channel_note(record: OutputRecord, passed: bool) -> str:
    """Which channels the worst was taken over, when not all; for class scores judged on every
    channel because the rule was guessed, what would judge them as classes."""
    fid = record.fidelity
    if fid.judged_channels is not None and fid.judged_channels < fid.channels:
        return (
            f" ({fid.judged_channels} of {fid.channels} classes judged: those in a top "
            f"{DECISIVE_TOP} of the original or the artifact)"
        )
    if not passed and record.task == "classify" and not record.gated:
        return (
            "; if these are class scores, labels in the eval data or --task classify judge "
            f"only the classes in a top {DECISIVE_TOP}"
        )
    return ""
