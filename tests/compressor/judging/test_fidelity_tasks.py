"""Per-output fidelity, task rules, the default floor and accuracy intervals on known arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compressor.judging.budget import Budget
from compressor.judging.confidence import paired_drop_interval
from compressor.judging.default_floor import DEFAULT_FLOOR, check_floor
from compressor.judging.evaluate import EvalResult, top1_accuracy
from compressor.judging.fidelity import SQNR_CAP_DB, measure_fidelity
from compressor.judging.output_records import compare_outputs
from compressor.judging.task_rules import agreement, choose_rule, infer_rule, parse_task_option
from foundation.errors import UsageError

RNG = np.random.default_rng(0)


def test_all_zero_output_is_a_collapse_not_a_cosine_of_one():
    ref = RNG.normal(size=(8, 5))
    fid = measure_fidelity(ref, np.zeros_like(ref), (1,))
    assert fid.collapse_share == 1.0
    assert fid.cosine_mean == 0.0 and fid.cosine_worst == 0.0
    assert fid.sqnr_mean_db == pytest.approx(0.0, abs=1e-9)  # noise equals the signal


def test_one_collapsed_sample_shows_in_worst_and_share():
    ref = RNG.normal(size=(10, 6))
    cand = ref.copy()
    cand[3] = 0.7  # constant where the reference varies
    fid = measure_fidelity(ref, cand, (1,))
    assert fid.collapse_share == pytest.approx(0.1)
    assert fid.cosine_worst == 0.0 and fid.cosine_mean == pytest.approx(0.9)
    assert fid.sqnr_mean_db < SQNR_CAP_DB and fid.sqnr_worst_db < 5


def test_identical_outputs_are_capped_not_infinite():
    ref = RNG.normal(size=(4, 3))
    fid = measure_fidelity(ref, ref, (1,))
    assert (fid.cosine_mean, fid.sqnr_mean_db, fid.collapse_share) == (1.0, SQNR_CAP_DB, 0.0)


def test_dead_small_channel_is_visible_per_channel_but_not_in_the_whole_tensor():
    boxes = RNG.uniform(0, 300, size=(16, 4, 50))
    scores = RNG.uniform(0, 1, size=(16, 3, 50))
    ref = np.concatenate([boxes, scores], axis=1)
    cand = np.concatenate([boxes + RNG.normal(0, 0.5, boxes.shape), np.zeros_like(scores)], 1)
    fid = measure_fidelity(ref, cand, (1,))
    assert fid.cosine_mean > 0.99 and fid.sqnr_mean_db > 25  # the tensor as a whole looks fine
    assert fid.worst_channel in (4, 5, 6) and fid.worst_channel_sqnr_db < 1  # a score channel
    assert fid.channels == 7


def test_one_value_per_sample_collapses_over_the_batch():
    ref = RNG.normal(size=(12, 1))
    fid = measure_fidelity(ref, np.full_like(ref, 0.3))
    assert fid.collapse_share == 1.0
    assert infer_rule(ref, None, True).task == "regression"


@pytest.mark.parametrize(
    ("shape", "labels", "task"),
    [
        ((6, 10), np.arange(6) % 10, "classify"),
        ((6, 10), None, "classify"),
        ((6, 3), None, "classify"),
        ((6,), None, "regression"),
        ((6, 20, 30), None, "sequence"),
        ((6, 4, 8, 8), None, "segment"),
    ],
)
def test_task_inferred_from_shape_and_labels(shape, labels, task):
    rule = infer_rule(RNG.normal(size=shape), labels, True)
    assert rule.task == task and rule.reason


def test_unit_rows_are_embeddings():
    rows = RNG.normal(size=(6, 32))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    assert infer_rule(rows, None, False).task == "embed"


def test_task_override_per_output_and_for_all():
    ref = RNG.normal(size=(4, 7, 30))
    given = parse_task_option(("boxes=detect",))
    assert choose_rule("boxes", ref, None, True, given).task == "detect"
    assert choose_rule("other", ref, None, True, given).task == "sequence"
    assert (
        choose_rule("x", ref, None, True, parse_task_option(("regression",))).task == "regression"
    )
    assert "--task boxes=detect" in choose_rule("boxes", ref, None, True, given).reason
    with pytest.raises(UsageError, match="KIND"):
        parse_task_option(("boxes=tracking",))
    with pytest.raises(UsageError, match="detect needs"):
        choose_rule("y", RNG.normal(size=(4, 10)), None, True, {"*": "detect"})


def test_sequence_agreement_is_per_step_not_over_the_flattened_output():
    ref = RNG.normal(size=(5, 12, 6))
    cand = ref.copy()
    cand[:, :3] = cand[:, :3, ::-1]  # first 3 of 12 steps now predict another class
    rule = infer_rule(ref, None, True)
    numbers = agreement(rule, ref, cand)
    assert numbers["step_agreement"] == pytest.approx(9 / 12, abs=0.1)


def test_a_detection_head_is_recognised_from_its_values_and_a_dead_score_row_shows():
    boxes = RNG.uniform(0, 640, (4, 4, 300))
    scores = 1 / (1 + np.exp(-RNG.normal(-3, 2, (4, 80, 300))))
    ref = np.concatenate([boxes, scores], axis=1)  # YOLO-style [B, 84, anchors]
    rule = infer_rule(ref, None, True)
    assert rule.task == "detect" and rule.channel_axes == (1,) and "scores in [0, 1]" in rule.reason
    dead = ref.copy()
    dead[:, 4:] = 0.0
    fid = measure_fidelity(ref, dead, rule.channel_axes)
    assert fid.cosine_mean > 0.99 and fid.worst_channel >= 4 and fid.worst_channel_sqnr_db < 1


def test_sequences_are_scored_per_step_and_per_class():
    ref = RNG.normal(size=(6, 10, 5))
    cand = ref.copy()
    cand[:, 7] = 0.0  # one dead time step
    fid = measure_fidelity(ref, cand, infer_rule(ref, None, True).channel_axes)
    assert (fid.channel_axis, fid.worst_channel) == (1, 7) and fid.worst_channel_sqnr_db < 1


def test_detection_recall_drops_when_scores_die():
    ref = np.concatenate([RNG.uniform(0, 300, (4, 4, 40)), RNG.uniform(0, 1, (4, 3, 40))], axis=1)
    rule = choose_rule("out", ref, None, True, {"*": "detect"})
    assert agreement(rule, ref, ref)["detection_recall"] == 1.0
    dead = ref.copy()
    dead[:, 4:] = 0
    assert agreement(rule, ref, dead)["detection_recall"] == 0.0


def test_one_channel_map_gets_iou():
    ref = RNG.uniform(0, 1, (3, 1, 8, 8))
    rule = infer_rule(ref, None, True)
    numbers = agreement(rule, ref, np.zeros_like(ref))
    assert numbers["iou"] == 0.0 and rule.task == "segment"


def _eval(outputs: dict, labels=None) -> EvalResult:
    return EvalResult(outputs, None, len(next(iter(outputs.values()))), labels)


def test_floor_names_the_broken_output_and_flags_replace_defaults():
    good = RNG.normal(size=(20, 10))
    second = RNG.normal(size=(20, 8))
    ref = _eval({"logits": good, "embedding": second})
    cand = _eval({"logits": good + 1e-4, "embedding": RNG.normal(size=(20, 8))})
    records = compare_outputs(ref, cand)
    rows = {r.name: r for r in check_floor(records, Budget())}
    assert not rows["min_fidelity"].passed and "'embedding'" in rows["min_fidelity"].note
    assert rows["min_fidelity"].source == "default"
    assert rows["min_fidelity"].limit == DEFAULT_FLOOR.min_cosine
    flagged = {
        r.name: r for r in check_floor(records, Budget(min_sqnr=-100.0), {"min_sqnr": "recipe"})
    }
    assert flagged["min_sqnr"].passed and flagged["min_sqnr"].source == "recipe"
    assert check_floor(records, Budget(default_floor=False)) == []


def test_floor_without_compared_outputs_is_not_a_pass():
    (row,) = check_floor(None, Budget())
    assert (row.name, row.passed, row.value, row.source) == (
        "default_floor",
        False,
        None,
        "default",
    )
    rows = check_floor(None, Budget(min_sqnr=20.0, default_floor=False))
    assert [(r.name, r.passed, r.source) for r in rows] == [("min_sqnr", False, "flag")]


def test_task_naming_an_unknown_output_is_a_usage_error():
    ref = _eval({"a": RNG.normal(size=(3, 4))})
    with pytest.raises(UsageError, match="does not have"):
        compare_outputs(ref, ref, {"b": "embed"})


def test_drop_interval_is_wide_on_twenty_samples_and_narrow_on_thousands():
    base = np.ones(20, bool)
    comp = base.copy()
    comp[0] = False  # one sample of 20: a 5-point drop, not a certain one
    low, high = paired_drop_interval(base, comp)
    assert low < 0 < 5 < high
    big_base, big_comp = np.ones(2000, bool), np.ones(2000, bool)
    big_comp[:20] = False
    low, high = paired_drop_interval(big_base, big_comp)
    assert 0 < low < 1 < high < 2


def test_after_torch_passes_signal_checks_use_the_student_and_agreement_the_original():
    original = RNG.normal(size=(30, 10))
    student = original * 0.5 + RNG.normal(0, 0.3, size=original.shape)  # retrained on purpose
    artifact = student + 1e-4
    labels = original.argmax(axis=1)  # labels make the classify rule certain, so it is gated
    vs_original = compare_outputs(_eval({"y": original}, labels), _eval({"y": artifact}))
    vs_student = compare_outputs(_eval({"y": student}, labels), _eval({"y": artifact}))
    alone = {r.name: r for r in check_floor(vs_original, Budget())}
    assert not alone["min_sqnr"].passed  # the retrained logits differ from the original's
    rows = {r.name: r for r in check_floor(vs_original, Budget(), student=vs_student)}
    assert rows["min_sqnr"].passed and "after the torch passes" in rows["min_sqnr"].note
    agreement = rows["min_task_agreement"]
    assert agreement.value == vs_original[0].headline_value
    assert "torch passes" not in agreement.note


def test_scalar_outputs_are_scored_over_the_batch_not_by_sign():
    ref = RNG.normal(size=(50, 1))  # centred on 0: small values flip sign under tiny noise
    cand = ref + RNG.normal(0, 0.01, size=ref.shape)
    fid = measure_fidelity(ref, cand)
    assert fid.cosine_mean > 0.999 and fid.sqnr_mean_db > 30 and fid.collapse_share == 0.0


def test_nan_outputs_are_a_collapse_and_stay_valid_json():
    import json

    ref = RNG.normal(size=(4, 6))
    cand = ref.copy()
    cand[1, 2] = np.nan
    cand[3] = np.inf
    fid = measure_fidelity(ref, cand, (1,))
    assert fid.collapse_share == 0.5 and fid.cosine_worst == 0.0
    assert fid.sqnr_worst_db == -SQNR_CAP_DB and fid.nonfinite_share == pytest.approx(
        7 / 24, abs=1e-6
    )
    json.dumps(fid.__dict__, allow_nan=False)  # every number finite


def test_recipe_keeps_task_metric_and_floor_settings(tmp_path):
    from compressor.recipe import Recipe, load_recipe

    recipe = Recipe(
        model="m.pt2",
        task={"*": "sequence", "boxes": "detect"},
        metric="mymetrics:recall",
        budget=Budget(min_sqnr=20.0, max_metric_drop=0.01, default_floor=False),
    )
    path = tmp_path / "recipe.toml"
    path.write_text(recipe.to_toml())
    assert load_recipe(path) == recipe


def test_top1_accuracy_needs_a_class_axis_not_a_flattened_map():
    from compressor.judging.evaluate import top1_accuracy

    labels = np.array([1, 0])
    assert top1_accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), labels) == 1.0
    assert top1_accuracy(np.array([[[0.1, 0.9]], [[0.8, 0.2]]]), labels) == 1.0  # [B, 1, C]
    assert top1_accuracy(RNG.normal(size=(2, 5, 3)), labels) is None  # a sequence


def test_outputs_with_the_same_names_are_matched_by_name_not_position():
    a, b = RNG.normal(size=(8, 4)), RNG.normal(size=(8, 3))
    records = compare_outputs(_eval({"a": a, "b": b}), _eval({"b": b, "a": a}))
    assert [r.name for r in records] == ["b", "a"]
    assert all(r.fidelity.sqnr_mean_db == 200.0 for r in records)


def test_rules_guessed_from_the_shape_are_reported_but_not_gated():
    ref = RNG.normal(size=(8, 12, 5))  # a hidden state looks like [B, T, C]
    cand = ref + RNG.normal(0, 0.05, size=ref.shape)  # healthy, but near-tied argmaxes flip
    (record,) = compare_outputs(_eval({"state": ref}), _eval({"state": cand}))
    assert record.task == "sequence" and not record.gated and "guessed" in record.rule
    rows = {r.name for r in check_floor((record,), Budget())}
    assert "min_task_agreement" not in rows and "min_sqnr" in rows
    (given,) = compare_outputs(_eval({"state": ref}), _eval({"state": cand}), {"*": "sequence"})
    assert given.gated


def test_fidelity_metrics_and_accuracy():
    ref = np.array([[1.0, 0.0, 2.0], [0.5, 3.0, 0.0]])
    same = measure_fidelity(ref, ref, (1,))
    assert same.cosine_mean == pytest.approx(1.0) and same.max_abs_error == 0.0
    noisy = measure_fidelity(ref, ref + 0.1, (1,))
    assert 0 < noisy.sqnr_mean_db < 200 and noisy.collapse_share == 0.0
    assert top1_accuracy(ref, np.array([2, 1])) == 1.0
    assert top1_accuracy(ref, np.array([0, 1])) == 0.5
    assert top1_accuracy(ref, None) is None


def test_an_accuracy_collapse_is_flagged_even_without_a_budget(example, tmp_path, cli):
    result = cli(
        [
            example["model"],
            "--prune",
            "0.9",
            "--eval",
            example["eval"],
            "--runs",
            "2",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 1, result.output  # the default floor fails it, no budget needed
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    drop = report["baseline"]["accuracy"] - report["compressed"]["accuracy"]
    assert drop > 0.05  # 90% of channels gone and no fine-tuning
    assert any(n.startswith("WARNING: top-1 fell") for n in report["notes"])
    failed = {b["name"]: b["source"] for b in report["budgets"] if not b["passed"]}
    assert failed.get("min_task_agreement") == "default"


def _many_class_logits(samples: int = 96, classes: int = 1000, seen: int = 24) -> np.ndarray:
    """Logits shaped like a 1000-class net's on a small eval set: each sample's class (one of
    `seen`) scores ~9 above the rest; every class sits near zero with its own spread, 0.05 to
    1.5 (EfficientNet-Lite0 on photo crops: output RMS 1.3, the quietest classes 0.1-0.2)."""
    rng = np.random.default_rng(3)
    spread = np.exp(rng.uniform(np.log(0.05), np.log(1.5), classes))
    logits = rng.normal(0, 1, (samples, classes)) * spread
    logits[np.arange(samples), rng.integers(0, seen, samples)] += 9.0
    return logits


def _shared_noise(ref: np.ndarray) -> np.ndarray:
    """The same small error on every logit, as int8 leaves it (0.08 RMS; EfficientNet: 0.11)."""
    return ref + np.random.default_rng(4).normal(0, 0.08, ref.shape)


def test_quiet_class_logits_under_the_shared_noise_are_not_judged_for_a_classifier():
    ref = _many_class_logits()
    cand = _shared_noise(ref)
    every = measure_fidelity(ref, cand, (1,))
    assert every.worst_channel_sqnr_db < 0  # a quiet class: noise over a near-zero signal
    assert every.sqnr_mean_db > 15 and every.cosine_mean > 0.98
    (record,) = compare_outputs(_eval({"logits": ref}, ref.argmax(1)), _eval({"logits": cand}))
    assert record.task == "classify" and record.gated
    fid = record.fidelity
    assert fid.channels == 1000 and 24 <= fid.judged_channels < 200
    rows = {r.name: r for r in check_floor((record,), Budget())}
    assert all(r.passed for r in rows.values()), rows
    channel = rows["min_channel_sqnr"]
    assert channel.value >= DEFAULT_FLOOR.min_channel_sqnr_db
    assert f"{fid.judged_channels} of 1000 classes judged" in channel.note
    (given,) = compare_outputs(_eval({"logits": ref}), _eval({"logits": cand}), {"*": "classify"})
    assert given.fidelity == fid  # --task classify judges the same classes as labels do


def test_quiet_class_logits_of_a_guessed_rule_are_still_judged_and_the_note_says_why():
    ref = _many_class_logits()
    (record,) = compare_outputs(_eval({"logits": ref}), _eval({"logits": _shared_noise(ref)}))
    assert record.task == "classify" and not record.gated  # no labels, no --task
    assert record.fidelity.judged_channels == record.fidelity.channels == 1000
    rows = {r.name: r for r in check_floor((record,), Budget())}
    assert (
        not rows["min_channel_sqnr"].passed and "--task classify" in rows["min_channel_sqnr"].note
    )


@pytest.mark.parametrize("defect", ["halved", "risen", "dead"])
def test_a_broken_class_channel_of_a_classifier_still_fails(defect):
    ref = _many_class_logits()
    cand = _shared_noise(ref)
    seen, quiet = int(ref.argmax(1)[0]), int(np.abs(ref).mean(0).argmin())
    broken = {"halved": seen, "risen": quiet, "dead": seen}[defect]
    if defect == "halved":  # a wrong weight scale on one class row
        cand[:, seen] = 0.5 * ref[:, seen]
    elif defect == "risen":  # a quiet class pushed up: it enters the artifact's top 5
        cand[:, quiet] += 8.0
    else:
        cand[:, seen] = 0.0
    (record,) = compare_outputs(_eval({"logits": ref}, ref.argmax(1)), _eval({"logits": cand}))
    rows = {r.name: r for r in check_floor((record,), Budget())}
    assert not rows["min_channel_sqnr"].passed and record.fidelity.worst_channel == broken
    assert f"channel {broken}" in rows["min_channel_sqnr"].note
