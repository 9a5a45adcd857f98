"""benchmarks/classifier_channels.py's figures on known logits (the EfficientNet run itself needs
the real-models extra and minutes; its numbers are in docs/verification.md)."""

from __future__ import annotations

import numpy as np

from benchmarks.classifier_channels import channel_figures


def test_a_quiet_class_is_worst_over_all_classes_but_not_among_the_decisive_ones():
    rng = np.random.default_rng(0)
    spread = np.exp(rng.uniform(np.log(0.03), np.log(1.5), 100))  # each class its own spread
    ref = rng.normal(0, 1, (40, 100)) * spread
    ref[np.arange(40), np.arange(40) % 8] += 9.0  # 8 classes lead; the quietest stay near 0
    cand = ref + rng.normal(0, 0.05, ref.shape)  # the same small error on every logit
    figures = channel_figures(ref, cand)
    assert figures["top1_agreement"] == 1.0 and figures["top5_agreement"] == 1.0
    assert figures["worst_class_all_db"] < 5 and figures["classes_below_10db"] > 10
    assert 8 <= figures["decisive_classes"] < 100 and figures["worst_decisive_db"] > 10
    assert figures["worst_class_error_rms"] < 2 * figures["output_error_rms"]
