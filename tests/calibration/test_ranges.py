"""Range methods: entropy and percentile clip outliers (entropy used to equal minmax)."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.activations import TensorStats
from calibration.ranges import RANGE_METHODS, tensor_range
from foundation.errors import UsageError


def _stats(values: np.ndarray) -> TensorStats:
    stats = TensorStats()
    stats.observe(values)
    stats.add_histogram(values)
    return stats


def test_entropy_clips_a_rare_outlier_that_minmax_keeps():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(200_000), [80.0, -75.0]]).astype(np.float32)
    stats = _stats(values.reshape(1, 1, -1))
    low, high = tensor_range(stats, "minmax")
    assert (low, high) == (-75.0, 80.0)
    e_low, e_high = tensor_range(stats, "entropy")
    assert 3.0 < e_high < 20.0 and -20.0 < e_low < -3.0  # the Gaussian bulk, not the outliers
    p_low, p_high = tensor_range(stats, "percentile")
    assert p_high < high and p_low > low


def test_entropy_keeps_the_full_range_of_a_uniform_tensor_and_ignores_relu_zeros():
    rng = np.random.default_rng(1)
    relu = np.maximum(rng.uniform(-1, 1, 100_000), 0).astype(np.float32)  # half exact zeros
    low, high = tensor_range(_stats(relu.reshape(1, 1, -1)), "entropy")
    assert low == 0.0 and high > 0.9


def test_unknown_method_names_the_choices():
    with pytest.raises(UsageError, match="entropy"):
        tensor_range(TensorStats(0.0, 1.0), "kl")
    assert set(RANGE_METHODS) == {"minmax", "entropy", "percentile"}
