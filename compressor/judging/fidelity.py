"""How closely one output of an artifact follows the same output of the baseline.

Every number is per sample (mean and worst) or per channel (worst), so that one large channel
cannot hide a dead one and an all-zero output never scores like a perfect one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# dB values are clipped to +-SQNR_CAP_DB so that exact matches stay finite JSON numbers.
SQNR_CAP_DB = 200.0
# An output is constant when its spread is below this share of the reference's spread.
CONSTANT_SHARE = 1e-6


@dataclass(frozen=True)
class OutputFidelity:
    """Per-sample cosine and SQNR (mean, worst), max abs error, collapse share, worst channel."""

    cosine_mean: float
    cosine_worst: float
    sqnr_mean_db: float
    sqnr_worst_db: float
    max_abs_error: float
    collapse_share: float
    channel_axis: int | None
    channels: int
    worst_channel: int | None
    worst_channel_sqnr_db: float | None
    nonfinite_share: float = 0.0  # share of NaN/Inf values in the candidate
    judged_channels: int | None = None  # channels the worst is taken over (None: no channels)


def sqnr_db(signal: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """10·log10(signal/noise) in dB, clipped to ±SQNR_CAP_DB (noise 0 gives the cap)."""
    signal, noise = np.asarray(signal, np.float64), np.asarray(noise, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(noise > 0, signal / np.maximum(noise, 1e-300), np.inf)
        ratio = np.where((signal <= 0) & (noise <= 0), np.inf, ratio)
        db = 10.0 * np.log10(np.maximum(ratio, 1e-300))
    return np.clip(db, -SQNR_CAP_DB, SQNR_CAP_DB)


def collapsed_samples(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Per sample: the candidate is constant (e.g. all zero) where the reference is not.

    Outputs with one value per sample collapse as a whole: constant over the batch while the
    reference varies.
    """
    if ref.shape[1] == 1:
        ref, cand = ref.reshape(1, -1), cand.reshape(1, -1)
        return np.repeat(_constant_where_varying(ref, cand), ref.shape[1])
    return _constant_where_varying(ref, cand)


def _constant_where_varying(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    ref_spread = np.ptp(ref, axis=1)
    cand_spread = np.ptp(cand, axis=1)
    return (ref_spread > 0) & (cand_spread <= CONSTANT_SHARE * ref_spread)


def sample_cosines(ref: np.ndarray, cand: np.ndarray, collapsed: np.ndarray) -> np.ndarray:
    """Cosine per sample; identical zero rows score 1, a collapsed or zero-vs-nonzero row 0."""
    dot = (ref * cand).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    both_zero = ~ref.any(axis=1) & ~cand.any(axis=1)
    cosine = np.where(norms > 0, dot / np.maximum(norms, 1e-300), np.where(both_zero, 1.0, 0.0))
    return np.where(collapsed, 0.0, cosine)


def argmax_agreement(ref: np.ndarray, cand: np.ndarray, axis: int) -> float:
    """Share of positions where reference and candidate pick the same index along axis (the
    project's one top-1 agreement: classifiers, per-pixel maps, per-step sequences)."""
    return float((ref.argmax(axis=axis) == cand.argmax(axis=axis)).mean())


def channel_sqnr(
    ref: np.ndarray, cand: np.ndarray, axes: tuple[int, ...], judged: np.ndarray | None = None
) -> tuple[int, int | None, float | None, int | None, int | None]:
    """(channels, worst channel, its SQNR in dB, its axis, channels judged): each slice along
    each axis, over all samples and other positions; the worst slice over all axes. judged
    (indices along a single axis) limits the worst to those channels."""
    best: tuple = (0, None, None, None, None)
    for axis in axes:
        if ref.ndim < 2 or ref.shape[axis] < 2:
            continue
        ref_c = np.moveaxis(ref, axis, 0).reshape(ref.shape[axis], -1)
        cand_c = np.moveaxis(cand, axis, 0).reshape(ref.shape[axis], -1)
        per_channel = sqnr_db((ref_c**2).sum(axis=1), ((ref_c - cand_c) ** 2).sum(axis=1))
        index = np.arange(len(per_channel)) if judged is None else np.asarray(judged, int)
        worst = int(index[per_channel[index].argmin()])
        if best[2] is None or per_channel[worst] < best[2]:
            best = (len(per_channel), worst, round(float(per_channel[worst]), 3), axis, len(index))
    return best


def measure_fidelity(
    reference: np.ndarray,
    candidate: np.ndarray,
    channel_axes: tuple[int, ...] = (),
    judged: np.ndarray | None = None,
) -> OutputFidelity:
    """Fidelity of candidate against reference for one output stacked as [samples, ...];
    outputs with one value per sample are scored over the batch (a per-sample cosine of a
    scalar is only its sign). NaN/Inf in the candidate count as zeros and as a collapse.
    judged: the channels (along the one channel axis) the worst channel is taken over."""
    ref = np.nan_to_num(np.asarray(reference, np.float64), posinf=0.0, neginf=0.0)
    raw = np.asarray(candidate, np.float64).reshape(ref.shape)
    nonfinite = ~np.isfinite(raw)
    cand = np.where(nonfinite, 0.0, raw)
    flat_ref, flat_cand = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1)
    flat_bad = nonfinite.reshape(len(ref), -1)
    if flat_ref.shape[1] == 1:  # one value per sample: scored over the batch as one vector
        flat_ref, flat_cand = flat_ref.reshape(1, -1), flat_cand.reshape(1, -1)
        flat_bad = flat_bad.reshape(1, -1)
    bad = flat_bad.any(axis=1)
    collapsed = _constant_where_varying(flat_ref, flat_cand) | bad
    cosines = sample_cosines(flat_ref, flat_cand, collapsed)
    sqnrs = sqnr_db((flat_ref**2).sum(axis=1), ((flat_ref - flat_cand) ** 2).sum(axis=1))
    sqnrs = np.where(bad, -SQNR_CAP_DB, sqnrs)
    channels, worst, worst_db, axis, judged_count = channel_sqnr(ref, cand, channel_axes, judged)
    return OutputFidelity(
        cosine_mean=round(float(cosines.mean()), 6),
        cosine_worst=round(float(cosines.min()), 6),
        sqnr_mean_db=round(float(sqnrs.mean()), 3),
        sqnr_worst_db=round(float(sqnrs.min()), 3),
        max_abs_error=float(np.abs(flat_ref - flat_cand).max()) if flat_ref.size else 0.0,
        collapse_share=round(float(collapsed.mean()), 6),
        channel_axis=axis,
        channels=channels,
        worst_channel=worst,
        worst_channel_sqnr_db=worst_db,
        nonfinite_share=round(float(nonfinite.mean()), 6),
        judged_channels=judged_count,
    )


def output_fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Compact summary of one output stacked as [samples, ...]: per-sample mean cosine and SQNR
    (a collapsed sample counts as cosine 0), max abs error and top-1 agreement of the flattened
    samples. Verification uses the full per-output records (compressor/judging/output_records.py)."""
    fid = measure_fidelity(reference, candidate)
    ref = np.asarray(reference).reshape(len(reference), -1)
    cand = np.asarray(candidate).reshape(len(candidate), -1)
    return {
        "cosine": fid.cosine_mean,
        "max_abs_error": fid.max_abs_error,
        "sqnr_db": fid.sqnr_mean_db,
        "top1_agreement": argmax_agreement(ref, cand, 1),
    }
