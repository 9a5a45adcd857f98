"""Confidence intervals for accuracy drops measured on a finite eval set."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959964


def paired_drop_interval(base_correct: np.ndarray, comp_correct: np.ndarray) -> tuple[float, float]:
    """95% interval of the top-1 drop (points) from per-sample correctness of both models.

    Agresti–Min adjusted Wald interval for a difference of paired proportions: half a sample is
    added to each of the four agree/disagree cells, so 0 or 1 flips out of 20 still give an
    honest width instead of a certainty.
    """
    base, comp = np.asarray(base_correct, bool), np.asarray(comp_correct, bool)
    n = len(base) + 2.0
    lost = float((base & ~comp).sum()) + 0.5  # right before, wrong now
    gained = float((~base & comp).sum()) + 0.5
    drop = (lost - gained) / n
    variance = ((lost + gained) - (lost - gained) ** 2 / n) / n**2
    half = Z95 * math.sqrt(max(variance, 0.0))
    return round(100.0 * max(drop - half, -1.0), 2), round(100.0 * min(drop + half, 1.0), 2)
