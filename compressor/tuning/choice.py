"""Which --auto trials hold the budgets, which form the Pareto front, and which one is kept."""

from __future__ import annotations

from compressor.judging.budget import Budget
from compressor.tuning.block_latency import LATENCY_MARGIN

DEFAULT_DROP_POINTS = 1.0  # the aim without budgets: top-1 within 1 point, or
DEFAULT_COSINE = 0.99  # outputs within cosine 0.99 when there are no labels


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


def choose_trial(trials: list[dict], slow: list[str], objective: str = "accuracy") -> dict:
    """The passing trial to keep, from measured records.

    Passing trials that leave every slower-in-int8 block float come first; then the fewest
    float blocks (objective accuracy) or the lowest latency ratio to fp32 (objective latency).
    An fp16 trial replaces its fp32 twin when it passes and is no slower beyond noise. With no
    passing trial, the best quality one."""
    passing = [t for t in trials if t["passed"]]
    if not passing:
        return max(trials, key=lambda t: (-t.get("accuracy_drop", 0.0), t["cosine"]))

    def key(t: dict) -> tuple:
        keeps_slow_float = set(slow) <= set(t["plan"])
        speed, blocks = t["latency_vs_fp32"], t["float_blocks"]
        order = (speed, blocks) if objective == "latency" else (blocks, speed)
        return (not keeps_slow_float, *order)

    chosen = min((t for t in passing if t["fallback"] == "fp32"), key=key, default=None)
    if chosen is None:
        return min(passing, key=key)
    twins = [t for t in passing if t["fallback"] == "fp16" and t["plan"] == chosen["plan"]]
    limit = chosen["latency_vs_fp32"] * (1 + LATENCY_MARGIN)
    return next((t for t in twins if t["latency_vs_fp32"] <= limit), chosen)
