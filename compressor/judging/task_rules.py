"""Task-aware agreement: which rule judges an output, why, and the agreement it measures.

An output's kind is inferred from its shape, values and the labels, or set with --task; each
kind has one agreement rule (a table, below) and the axes along which channels are scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compressor.judging.fidelity import argmax_agreement
from foundation.errors import UsageError

DETECT_SCORE = 0.25  # a reference anchor whose best class score reaches this is a detection
BOX_CHANNELS = 4  # detection heads put x, y, w, h before the class scores
# A class channel is judged when it is in the original's or the artifact's top DECISIVE_TOP of
# some sample: the deepest rank the classify rule measures (top-5 agreement). Deeper class
# logits decide nothing the report measures; their SQNR is the output's shared noise over a
# near-zero signal (docs/verification.md, "Which class channels are judged").
DECISIVE_TOP = 5


@dataclass(frozen=True)
class TaskRule:
    """The rule an output gets: its task, why, and the axes its channels lie along."""

    task: str
    reason: str
    channel_axes: tuple[int, ...]
    gated: bool = True  # False: guessed from the shape alone, agreement reported, not gated


def classify_agreement(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """Top-1 agreement over the class axis, and how often the reference class is in the top 5."""
    ref2, cand2 = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1)
    top5 = np.argsort(-cand2, axis=1)[:, :5]
    in_top5 = (top5 == ref2.argmax(axis=1)[:, None]).any(axis=1)
    return {
        "top1_agreement": argmax_agreement(ref2, cand2, 1),
        "top5_agreement": float(in_top5.mean()),
    }


def embed_agreement(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """Mean cosine of the embedding vectors (zero vectors count as 0 unless both are zero)."""
    from compressor.judging.fidelity import collapsed_samples, sample_cosines

    r, c = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1)
    return {"cosine": float(sample_cosines(r, c, collapsed_samples(r, c)).mean())}


def segment_agreement(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """Per-pixel argmax agreement over the class axis; for one-channel maps the IoU of the
    maps thresholded at 0.5 (probabilities) or 0 (logits)."""
    if ref.ndim >= 3 and ref.shape[1] > 1:
        return {"pixel_agreement": argmax_agreement(ref, cand, 1)}
    threshold = 0.5 if ref.min() >= 0 and ref.max() <= 1 else 0.0
    r, c = ref > threshold, cand > threshold
    union = (r | c).sum()
    iou = float((r & c).sum() / union) if union else 1.0
    return {"iou": iou, "pixel_agreement": float((r == c).mean())}


def sequence_agreement(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """Per-step argmax agreement over the last axis of [B, T, C]."""
    return {"step_agreement": argmax_agreement(ref, cand, -1)}


def detect_agreement(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """Recall of the reference's detections: anchors whose best class score reaches DETECT_SCORE
    (else each sample's 5 best) that the candidate also scores that high, with the same class."""
    axis = detect_channel_axis(ref.shape)
    classes = ref.shape[axis] - BOX_CHANNELS
    r = np.moveaxis(ref, axis, -1)[..., BOX_CHANNELS:].reshape(len(ref), -1, classes)
    c = np.moveaxis(cand, axis, -1)[..., BOX_CHANNELS:].reshape(r.shape)
    best, cls = r.max(axis=-1), r.argmax(axis=-1)
    positives = best >= DETECT_SCORE
    if not positives.any():
        top = np.argsort(-best, axis=1)[:, :5]
        np.put_along_axis(positives, top, True, axis=1)
    cand_score = np.take_along_axis(c, cls[..., None], -1)[..., 0]
    kept = (c.argmax(axis=-1) == cls) & (cand_score >= np.minimum(DETECT_SCORE, 0.5 * best))
    return {"detection_recall": float(kept[positives].mean())}


def regression_agreement(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """Mean absolute error relative to the reference's mean magnitude (lower is better)."""
    scale = float(np.abs(ref).mean())
    error = float(np.abs(ref - cand).mean())
    return {"relative_error": error / scale if scale > 0 else (0.0 if error == 0 else 1.0)}


def detect_channel_axis(shape: tuple[int, ...]) -> int:
    """[B, 4+K, N] or [B, N, 4+K]: the smaller non-batch axis holds boxes and class scores."""
    return 1 if shape[1] <= shape[-1] else len(shape) - 1


# task -> (agreement rule (its first number is the headline), True when higher is better,
#          channel axes for a stacked output shape; a sequence is sliced per step and per class)
TASK_RULES: dict[str, tuple[Callable, bool, Callable[[tuple], tuple[int, ...]]]] = {
    "classify": (classify_agreement, True, lambda s: (1,)),
    "embed": (embed_agreement, True, lambda s: (1,)),
    "detect": (detect_agreement, True, lambda s: (detect_channel_axis(s),)),
    "segment": (segment_agreement, True, lambda s: (1,)),
    "sequence": (sequence_agreement, True, lambda s: (1, len(s) - 1)),
    "regression": (regression_agreement, False, lambda s: ()),
}
TASKS = tuple(TASK_RULES)


GUESSED = " (guessed from the shape: agreement reported, not gated; --task KIND gates it)"


def infer_rule(ref: np.ndarray, labels: np.ndarray | None, first: bool) -> TaskRule:
    """The task an output looks like, from its shape [B, ...], its values and the labels."""
    shape = ref.shape
    per_sample = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if per_sample == 1:
        return TaskRule("regression", f"one value per sample {list(shape)}", ())
    if len(shape) == 2:
        if first and labels is not None and labels.size and int(labels.max()) < shape[1]:
            return TaskRule("classify", f"[B, {shape[1]}] scores; the labels index them", (1,))
        norms = np.linalg.norm(ref.reshape(len(ref), -1), axis=1)
        if np.allclose(norms, 1.0, atol=1e-2):
            return TaskRule("embed", f"[B, {shape[1]}] rows of unit length", (1,))
        why = f"[B, {shape[1]}]: classes along axis 1{GUESSED}"
        return TaskRule("classify", why, (1,), gated=False)
    if len(shape) == 3 and looks_like_detection(ref):
        axis = detect_channel_axis(shape)
        why = f"{list(shape)}: 4 wide-range box rows then {shape[axis] - 4} scores in [0, 1]"
        return TaskRule("detect", why, (axis,))
    if len(shape) == 3:
        why = f"[B, T, C] = {list(shape)}: argmax per step{GUESSED}"
        return TaskRule("sequence", why, (1, 2), gated=False)
    why = f"dense map {list(shape)}: classes along axis 1{GUESSED}"
    return TaskRule("segment", why, (1,), gated=False)


def looks_like_detection(ref: np.ndarray) -> bool:
    """[B, 4+K, N] (or [B, N, 4+K]) whose K score slices lie in [0, 1] and box slices do not."""
    axis = detect_channel_axis(ref.shape)
    if ref.shape[axis] <= BOX_CHANNELS:
        return False
    rows = np.moveaxis(ref, axis, 0)
    scores, boxes = rows[BOX_CHANNELS:], rows[:BOX_CHANNELS]
    return bool(scores.min() >= 0 and scores.max() <= 1 and np.abs(boxes).max() > 1)


def choose_rule(
    name: str, ref: np.ndarray, labels: np.ndarray | None, first: bool, given: dict[str, str]
) -> TaskRule:
    """--task NAME=KIND or --task KIND (every output) wins over inference; the rule and why."""
    task = given.get(name) or given.get("*")
    if task is None:
        return infer_rule(ref, labels, first)
    if task not in TASK_RULES:
        raise UsageError(f"--task '{task}' is not one of {', '.join(TASKS)}.")
    if task == "detect" and (ref.ndim != 3 or ref.shape[detect_channel_axis(ref.shape)] <= 4):
        raise UsageError(
            f"--task detect needs output '{name}' shaped [B, 4+classes, anchors] (or "
            f"[B, anchors, 4+classes]); it is {list(ref.shape)}."
        )
    source = "--task " + (f"{name}={task}" if name in given else task)
    return TaskRule(task, f"set by {source}", TASK_RULES[task][2](ref.shape))


def decisive_classes(ref: np.ndarray, cand: np.ndarray) -> np.ndarray | None:
    """Classes in the original's or the artifact's top DECISIVE_TOP on some sample (None when
    the output is not one score per class, [B, C] with axes of size 1 aside)."""
    if ref.ndim < 2 or int(np.prod(ref.shape[2:])) != 1:
        return None
    finite = np.nan_to_num(np.asarray(cand, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    ranked = [np.argsort(-a.reshape(len(a), -1), axis=1, kind="stable") for a in (ref, finite)]
    return np.unique(np.concatenate([r[:, :DECISIVE_TOP] for r in ranked]))


def judged_channels(rule: TaskRule, ref: np.ndarray, cand: np.ndarray) -> np.ndarray | None:
    """The channels whose SQNR the floor judges (None: every channel). A classifier's class
    logits decide only through their ranking, so a classify rule backed by evidence (labels,
    --task) judges the decisive classes; a detection score, or anything guessed from the shape,
    keeps every channel (a small channel drowned by shared noise is a defect there)."""
    if rule.task == "classify" and rule.gated:
        return decisive_classes(ref, cand)
    return None


def agreement(rule: TaskRule, ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """The rule's agreement numbers, rounded for the report (NaN/Inf in cand count as 0)."""
    finite = np.nan_to_num(np.asarray(cand, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    numbers = TASK_RULES[rule.task][0](np.asarray(ref, np.float64), finite)
    return {k: round(v, 6) for k, v in numbers.items()}


def parse_task_option(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """--task KIND (all outputs) or --task OUTPUT=KIND (repeatable) as {output or '*': kind}."""
    tasks = {}
    for value in values:
        name, sep, kind = value.rpartition("=")
        if kind not in TASK_RULES:
            raise UsageError(
                f"--task '{value}' must be KIND or OUTPUT=KIND with KIND one of {', '.join(TASKS)}."
            )
        tasks[name if sep else "*"] = kind
    return tasks
