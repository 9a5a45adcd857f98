"""Distillation recovers a pruned model's accuracy, works without labels, is deterministic."""

from __future__ import annotations

import copy

import torch

from calibration.dataset import Dataset
from compressor.passes.distill import distill, kd_loss
from compressor.passes.prune import prune_channels
from compressor.passes.sparsity import apply_sparsity
from compressor.recipe import DistillConfig, PruneConfig
from tests.compressor.conftest import accuracy


def _pruned(teacher: torch.nn.Module, ratio: float = 0.6) -> torch.nn.Module:
    student = copy.deepcopy(teacher)
    prune_channels(student, PruneConfig(ratio), (torch.randn(2, 1, 8, 8),))
    return student


def test_distillation_improves_a_pruned_model(cnn_module, digits):
    student = _pruned(cnn_module)
    before = accuracy(student, digits["eval"])
    config = DistillConfig(enabled=True, epochs=4, lr=3e-3, features=("features.3",))
    info = distill(cnn_module, student, digits["train"], config, seed=0)
    after = accuracy(student, digits["eval"])
    assert after > before + 0.2, (before, after)
    assert after >= accuracy(cnn_module, digits["eval"]) - 0.03
    assert info["labels_used"] and info["val_metric_name"] == "accuracy"
    assert 1 <= info["epochs_run"] <= 4 and info["history"]


def test_label_free_distillation_is_deterministic(cnn_module, digits):
    unlabelled = Dataset(digits["train"].inputs, None, "no labels")
    config = DistillConfig(enabled=True, epochs=2, lr=3e-3, optimizer="sgd", batch_size=32)
    runs = []
    for _ in range(2):
        student = _pruned(cnn_module)
        info = distill(cnn_module, student, unlabelled, config, seed=7)
        runs.append(student.state_dict())
    assert info["val_metric_name"] == "teacher top-1 agreement" and not info["labels_used"]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert accuracy(student, digits["eval"]) > 0.8


def test_sparsity_masks_survive_fine_tuning(cnn_module, digits):
    student = copy.deepcopy(cnn_module)
    _, masks = apply_sparsity(student, PruneConfig(0.5, "2:4"), {"classifier.3"})
    config = DistillConfig(enabled=True, epochs=1, patience=1)
    distill(cnn_module, student, digits["train"].take(400), config, masks=masks)
    params = dict(student.named_parameters())
    for name, mask in masks.items():
        assert not params[name][~mask].any(), name


def test_kd_loss_is_zero_for_identical_logits_without_labels():
    logits = torch.randn(8, 10)
    config = DistillConfig(temperature=3.0)
    assert float(kd_loss(logits, logits, config, None)) < 1e-6
    labels = logits.argmax(-1)
    assert float(kd_loss(logits, logits, config, labels)) > 0  # CE term remains
