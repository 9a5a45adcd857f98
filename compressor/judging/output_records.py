"""Per-output records: every output of the artifact compared with the baseline's, by its rule."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from compressor.judging.evaluate import EvalResult
from compressor.judging.fidelity import OutputFidelity, measure_fidelity
from compressor.judging.task_rules import TASK_RULES, agreement, choose_rule, judged_channels
from foundation.errors import UsageError


@dataclass(frozen=True)
class OutputRecord:
    """One output: its task rule and why, the rule's agreement, and its fidelity numbers."""

    name: str
    shape: tuple[int, ...]
    task: str
    rule: str
    headline: str
    headline_value: float
    higher_is_better: bool
    gated: bool
    agreement: dict[str, float]
    fidelity: OutputFidelity

    def to_dict(self) -> dict:
        """The report.json form."""
        record = dataclasses.asdict(self)
        record["shape"] = list(self.shape)
        return record

    @classmethod
    def from_dict(cls, data: dict) -> OutputRecord:
        """One output's record from its report.json form."""
        fields = {f: data[f] for f in cls.__dataclass_fields__}
        fields["shape"] = tuple(data["shape"])
        fields["fidelity"] = OutputFidelity(**data["fidelity"])
        return cls(**fields)


def compare_outputs(
    reference: EvalResult | None, candidate: EvalResult | None, tasks: dict[str, str] | None = None
) -> tuple[OutputRecord, ...] | None:
    """Every output of candidate against the same output of reference: by name when both
    carry the same names (an artifact may list its outputs in another order), else by
    position."""
    if reference is None or candidate is None:
        return None
    if len(reference.outputs) != len(candidate.outputs):
        raise UsageError(
            f"The baseline has {len(reference.outputs)} outputs {list(reference.outputs)} but the "
            f"artifact has {len(candidate.outputs)} {list(candidate.outputs)}: they are not the "
            "same model."
        )
    tasks = tasks or {}
    _check_task_names(tasks, list(candidate.outputs) + list(reference.outputs))
    ref_items = list(reference.outputs.items())
    if set(reference.outputs) == set(candidate.outputs):
        ref_items = [(name, reference.outputs[name]) for name in candidate.outputs]
    pairs = zip(ref_items, candidate.outputs.items(), strict=True)
    return tuple(
        _record(name, ref_name, ref, cand, reference.labels, i == 0, tasks)
        for i, ((ref_name, ref), (name, cand)) in enumerate(pairs)
    )


def _record(
    name: str,
    ref_name: str,
    ref: np.ndarray,
    cand: np.ndarray,
    labels: np.ndarray | None,
    first: bool,
    tasks: dict[str, str],
) -> OutputRecord:
    if ref.shape != cand.shape:
        raise UsageError(
            f"Output '{name}' is {list(cand.shape)} in the artifact but {list(ref.shape)} in the "
            "baseline: they are not the same model."
        )
    given = {**tasks, **({name: tasks[ref_name]} if ref_name in tasks else {})}
    rule = choose_rule(name, ref, labels, first, given)
    numbers = agreement(rule, ref, cand)
    headline, higher = next(iter(numbers)), TASK_RULES[rule.task][1]
    return OutputRecord(
        name=name,
        shape=tuple(int(d) for d in ref.shape[1:]),
        task=rule.task,
        rule=rule.reason,
        headline=headline,
        headline_value=numbers[headline],
        higher_is_better=higher,
        gated=rule.gated,
        agreement=numbers,
        fidelity=measure_fidelity(ref, cand, rule.channel_axes, judged_channels(rule, ref, cand)),
    )


def _check_task_names(tasks: dict[str, str], names: list[str]) -> None:
    unknown = sorted(set(tasks) - {"*", *names})
    if unknown:
        raise UsageError(
            f"--task names outputs {unknown} that the model does not have; its outputs are "
            f"{sorted(set(names))}."
        )


def worst_summary(records: tuple[OutputRecord, ...] | None) -> dict | None:
    """The compact `fidelity` section: the worst output's cosine and SQNR, the largest error."""
    if not records:
        return None
    worst = min(records, key=lambda r: r.fidelity.cosine_mean)
    top1 = [r.agreement["top1_agreement"] for r in records if r.task == "classify"]
    return {
        "cosine": worst.fidelity.cosine_mean,
        "sqnr_db": min(r.fidelity.sqnr_mean_db for r in records),
        "max_abs_error": max(r.fidelity.max_abs_error for r in records),
        "worst_output": worst.name,
        "top1_agreement": min(top1) if top1 else None,
    }
