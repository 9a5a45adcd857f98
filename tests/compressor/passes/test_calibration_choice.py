"""The range method is chosen on held-back samples when the user does not set one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calibration.dataset import Dataset
from calibration.ranges import RANGE_METHODS
from compressor.passes.calibration_choice import choose_range_method
from compressor.passes.quantize import quantize_int8_static
from compressor.recipe import Int8Config, recipe_from_dict
from foundation.errors import UsageError
from targets.base import TensorSpec
from targets.onnx.capabilities import ORT_CPU_SCHEME
from tests.compressor.passes.int8_models import export_module
from tests.compressor.passes.test_equalize import badly_scaled_dw

ONLY_RANGES = Int8Config(equalize=False, smooth=False, bias_correction=False)


def test_choice_takes_the_best_score_and_reuses_known_ones():
    asked = []

    def score(method: str) -> float:
        asked.append(method)
        return {"entropy": 31.0, "percentile": 30.0}[method]

    chosen, record = choose_range_method(score, {"minmax": 30.5})
    assert chosen == "entropy" and asked == ["entropy", "percentile"]
    assert record["held_back_sqnr_db"] == {"minmax": 30.5, "entropy": 31.0, "percentile": 30.0}
    assert choose_range_method(lambda m: 1.0, {})[0] == "minmax"  # ties keep the first
    assert choose_range_method(score, {"minmax": 30.95}, 0.1)[0] == "minmax"  # within noise


def test_auto_records_every_method_and_a_set_method_is_honoured(tmp_path):
    torch.manual_seed(0)
    fp32 = export_module(badly_scaled_dw(), [TensorSpec("input", ("batch", 3, 12, 12))], tmp_path)
    rng = np.random.default_rng(0)
    data = Dataset({"input": rng.standard_normal((64, 3, 12, 12)).astype(np.float32)})
    auto = quantize_int8_static(
        fp32, tmp_path / "a.onnx", data, ORT_CPU_SCHEME, "auto", 8, config=ONLY_RANGES
    )
    choice = auto["steps"]["calibration"]
    scores = choice["held_back_sqnr_db"]
    assert set(scores) == set(RANGE_METHODS) and auto["method"] == choice["chosen"]
    best = max(scores, key=scores.get)
    assert choice["chosen"] == (best if scores[best] > scores["minmax"] + 0.1 else "minmax")
    assert len(set(scores.values())) > 1  # the methods really differ on this model
    given = quantize_int8_static(
        fp32, tmp_path / "p.onnx", data, ORT_CPU_SCHEME, "percentile", 8, config=ONLY_RANGES
    )
    assert given["method"] == "percentile" and "steps" not in given
    few = quantize_int8_static(
        fp32, tmp_path / "f.onnx", data.take(6), ORT_CPU_SCHEME, "auto", 2, config=ONLY_RANGES
    )
    assert few["method"] == "minmax" and "too few" in few["steps"]["calibration"]["why"]


def test_int8_steps_are_recipe_settings_with_checked_values():
    recipe = recipe_from_dict({"int8": {"equalize": False, "smooth_alpha": 0.8}}, "Recipe 'r'")
    assert recipe.int8 == Int8Config(equalize=False, smooth_alpha=0.8)
    assert recipe.calibration == "auto"
    with pytest.raises(UsageError, match="smooth_alpha"):
        Int8Config(smooth_alpha=1.5)
