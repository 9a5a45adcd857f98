"""The range method chosen per model: each candidate scored on held-back calibration samples."""

from __future__ import annotations

from collections.abc import Callable

from calibration.ranges import RANGE_METHODS

AUTO = "auto"  # the --calibration value that asks for the choice
FALLBACK = "minmax"  # when samples cannot be held back


def choose_range_method(
    score: Callable[[str], float], known: dict[str, float], margin: float = 0.0
) -> tuple[str, dict]:
    """The method with the best held-back output SQNR; minmax unless beaten by > margin dB.

    `known` holds scores already measured (e.g. minmax's, by an earlier step).
    """
    scores = {m: known[m] if m in known else score(m) for m in RANGE_METHODS}
    best = max(RANGE_METHODS, key=lambda m: scores[m])  # max keeps the first of equals
    chosen = best if scores[best] > scores[FALLBACK] + margin else FALLBACK
    record = {"chosen": chosen, "held_back_sqnr_db": {m: round(v, 2) for m, v in scores.items()}}
    return chosen, record
