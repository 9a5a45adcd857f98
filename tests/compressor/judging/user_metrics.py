"""Metric functions for --metric tests: (outputs, data) -> float, higher is better."""

from __future__ import annotations

import numpy as np


def digit_accuracy(outputs: dict[str, np.ndarray], data: dict[str, np.ndarray]) -> float:
    """Top-1 accuracy of the first output against the eval labels."""
    logits = next(iter(outputs.values()))
    return float((logits.argmax(axis=1) == data["labels"]).mean())


def aux_cosine(outputs: dict[str, np.ndarray], data: dict[str, np.ndarray]) -> float:
    """Mean cosine of the second output with the reference vectors stored in the eval data."""
    aux, target = list(outputs.values())[1], data["aux_target"]
    dot = (aux * target).sum(axis=1)
    return float(np.mean(dot / (np.linalg.norm(aux, axis=1) * np.linalg.norm(target, axis=1))))


def not_a_number(outputs: dict[str, np.ndarray], data: dict[str, np.ndarray]) -> str:
    """A broken metric: returns text."""
    return "high"
