"""The user's own metric (--metric pkg.module:function): a float, higher is better.

The function is called once with the baseline's outputs and once with the artifact's, each as
{output name: array [samples, ...]}, and with the eval data's labels and extra arrays (those
that are not model inputs) as a second dict; the drop between the two can gate a run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from calibration.dataset import Dataset
from calibration.loaders import load_dataset
from foundation.entry_points import import_entry_point
from foundation.errors import UsageError


class MetricError(UsageError):
    """The --metric function could not be imported, raised, or returned no finite number."""


def load_metric(spec: str) -> Callable:
    """The function --metric names."""
    return import_entry_point(spec, MetricError, "--metric")


def score(
    metric: Callable, spec: str, outputs: dict[str, np.ndarray], data: dict[str, np.ndarray]
) -> float:
    """metric(outputs, data) as a finite float, or a MetricError that says what went wrong."""
    try:
        value = metric(outputs, data)
    except Exception as exc:  # the user's code: any failure is theirs to fix
        raise MetricError(f"--metric '{spec}' raised {type(exc).__name__}: {exc}") from exc
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MetricError(
            f"--metric '{spec}' returned {type(value).__name__}, not a number (higher = better)."
        ) from None
    if not math.isfinite(number):
        raise MetricError(f"--metric '{spec}' returned {number}; it must be a finite number.")
    return number


def metric_data(
    metric: str | None,
    spec: str | None,
    inputs: list,
    evaluation: Dataset | None,
    layout: object | None = None,
) -> dict | None:
    """What the metric gets besides outputs: the eval data's labels and every array that is not
    a model input (an image folder has labels only); None without --metric or eval data."""
    if not metric or not spec or evaluation is None:
        return None
    labels = {"labels": evaluation.labels} if evaluation.labels is not None else {}
    if Path(spec).is_dir():
        return labels
    names = [getattr(s, "name", s) for s in inputs]
    raw = load_dataset(spec, None, layout).inputs  # layout: where samples lie (--batch-axis)
    extra = {
        k: v for k, v in raw.items() if k not in names and not (k == "input" and len(names) == 1)
    }
    return {**extra, **labels}
