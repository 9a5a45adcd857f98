"""Unstructured and 2:4 sparsity: exact patterns, baked into weights, shapes untouched."""

from __future__ import annotations

import copy

import torch

from compressor.passes.sparsity import apply_sparsity, check_two_four
from compressor.recipe import PruneConfig


def test_two_four_pattern_holds_exactly(cnn_module):
    shapes = {n: p.shape for n, p in cnn_module.named_parameters()}
    info, masks = apply_sparsity(cnn_module, PruneConfig(0.5, "2:4"), {"classifier.3"})
    params = dict(cnn_module.named_parameters())
    assert set(masks) == {"features.3.weight", "features.7.weight", "classifier.1.weight"}
    assert info["skipped_layers"] == ["features.0.weight"]  # 1 input channel: no 2:4 layout
    for name in masks:
        groups = params[name].detach().movedim(1, -1).reshape(-1, 4)
        assert ((groups != 0).sum(dim=1) == 2).all()
        assert check_two_four(params[name])
    assert not check_two_four(params["classifier.3.weight"][:, :64])  # output layer untouched
    assert {n: p.shape for n, p in cnn_module.named_parameters()} == shapes


def test_unstructured_uniform_and_global(cnn_module):
    uniform = copy.deepcopy(cnn_module)
    info, masks = apply_sparsity(uniform, PruneConfig(0.7, "unstructured"), {"classifier.3"})
    for name, sparsity in info["layer_sparsity"].items():
        assert abs(sparsity - 0.7) < 0.01, name
    info, _ = apply_sparsity(cnn_module, PruneConfig(0.7, "unstructured", True), {"classifier.3"})
    layer = info["layer_sparsity"]
    assert layer["features.0.weight"] != layer["features.7.weight"]  # one threshold, many ratios
    zeros = sum(int((p == 0).sum()) for n, p in cnn_module.named_parameters() if n in layer)
    total = sum(p.numel() for n, p in cnn_module.named_parameters() if n in layer)
    assert abs(zeros / total - 0.7) < 0.01
    x = torch.randn(4, 1, 8, 8)
    assert cnn_module(x).shape == (4, 10)


def test_lstm_and_attention_weights_are_sparsified():
    from benchmarks.zoo import build_model

    for name, key in (("lstm", "lstm.weight_hh_l0"), ("transformer", "in_proj_weight")):
        model = build_model(name)
        info, masks = apply_sparsity(model, PruneConfig(0.5, "unstructured"), {"fc"})
        assert any(key in n for n in masks), name
        assert abs(info["model_sparsity"] - 0.5) < 0.05, name
