"""--auto judges its trials by the verdict's own rules: the same outputs give the same cosine
and the same top-1 drop, whatever the output's shape ([B, C], [B, C, 1, 1], several outputs)."""

from __future__ import annotations

import numpy as np
import pytest

from compressor.judging.evaluate import EvalResult, top1_accuracy
from compressor.judging.output_records import compare_outputs, worst_summary
from compressor.tuning.search import judge_outputs


def _verdict(ref: list[np.ndarray], out: list[np.ndarray], labels: np.ndarray) -> dict:
    """The figures the final verdict reports for the same outputs (cosine, accuracy drop)."""
    names = [f"y{i}" for i in range(len(ref))]
    base = EvalResult(
        dict(zip(names, ref, strict=True)), top1_accuracy(ref[0], labels), len(labels), labels
    )
    comp = EvalResult(
        dict(zip(names, out, strict=True)), top1_accuracy(out[0], labels), len(labels), labels
    )
    summary = worst_summary(compare_outputs(base, comp))
    return {"cosine": summary["cosine"], "drop": 100 * (base.accuracy - comp.accuracy)}


@pytest.mark.parametrize("shape", [(64, 10), (64, 10, 1, 1), (64, 1, 10)])
def test_trial_and_verdict_give_the_same_figures(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=shape).astype(np.float32)
    out = ref + rng.normal(scale=0.6, size=shape).astype(np.float32)
    aux = rng.normal(size=(64, 8)).astype(np.float32)
    labels = ref.reshape(64, -1).argmax(axis=1)
    labels[:16] = (labels[:16] + 1) % 10  # the reference itself is not perfect
    trial = judge_outputs([ref, aux], [out, aux * 0.9 + 0.05], labels)
    verdict = _verdict([ref, aux], [out, aux * 0.9 + 0.05], labels)
    assert trial["cosine"] == pytest.approx(verdict["cosine"], abs=1e-5)
    assert trial["accuracy_drop"] == pytest.approx(verdict["drop"], abs=1e-3)
    assert trial["accuracy_drop"] > 5  # the noise flips real decisions: the check can fail


def test_a_map_output_has_no_top1_in_either() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(8, 3, 4, 4)).astype(np.float32)
    labels = np.zeros(8, dtype=np.int64)
    trial = judge_outputs([ref], [ref * 0.5], labels)
    assert "accuracy_drop" not in trial and top1_accuracy(ref, labels) is None
    assert trial["cosine"] == pytest.approx(1.0)
