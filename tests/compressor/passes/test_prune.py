"""Structured pruning: channels really go, couplings hold, the exported ONNX shrinks."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from benchmarks.zoo import build_model, export_program, zoo_data
from compressor.model.export import export_onnx
from compressor.model.loading import LoadedModel
from compressor.passes.prune import output_layer_names, prune_channels
from compressor.passes.trainable import trainable_module
from compressor.recipe import PruneConfig
from foundation.errors import UsageError
from targets.base import TensorSpec


def _weights(path: Path) -> int:
    model = onnx.load(str(path))
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def _zoo_module(name: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    program = export_program(build_model(name).eval(), name)
    module = trainable_module(LoadedModel(Path(f"{name}.pt2"), "exported", None, program, []))
    return module, (torch.from_numpy(zoo_data(name)["calib"].inputs["x"][:2]),)


def test_pruning_halves_channels_and_the_onnx_tensors(cnn_module, tmp_path):
    example = (torch.randn(2, 1, 8, 8),)
    spec = [TensorSpec("x", ("batch", 1, 8, 8))]
    before = export_onnx(LoadedModel(Path("a"), "module", cnn_module), spec, tmp_path / "a.onnx")
    pruned = copy.deepcopy(cnn_module)
    info = prune_channels(pruned, PruneConfig(0.5), example)
    assert info["channels"]["features.0"] == [32, 16]
    assert info["channels"]["features.7"] == [128, 64]
    assert pruned.get_submodule("features.1").num_features == 16  # BatchNorm follows its conv
    assert pruned.get_submodule("classifier.1").in_features == 64 * 2 * 2  # Linear after flatten
    assert pruned.get_submodule("classifier.3").out_features == 10  # output layer kept
    after = export_onnx(LoadedModel(Path("b"), "module", pruned), spec, tmp_path / "b.onnx")
    assert _weights(after) < 0.3 * _weights(before)
    assert pruned(torch.randn(5, 1, 8, 8)).shape == (5, 10)


@pytest.mark.parametrize("name", ["resnet", "mobilenet"])
def test_residual_and_depthwise_couplings_hold(name):
    module, example = _zoo_module(name)
    assert output_layer_names(module, example) == {"fc"}
    prune_channels(module, PruneConfig(0.5, round_to=4), example)
    convs = dict(module.named_modules())
    for layer_name, layer in convs.items():
        if isinstance(layer, nn.Conv2d) and layer.groups > 1:  # depthwise follows its input
            assert layer.groups == layer.in_channels == layer.out_channels
        if isinstance(layer, nn.Conv2d) and layer_name != "stem.0":
            assert layer.out_channels % 4 == 0
    if name == "resnet":  # both sides of every residual add keep one width
        assert convs["layer1.0.conv2"].out_channels == convs["stem.0"].out_channels
        assert convs["layer2.0.conv2"].out_channels == convs["layer2.0.shortcut.0"].out_channels
        assert convs["layer2.1.conv2"].out_channels == convs["layer2.0.conv2"].out_channels
        assert convs["stem.0"].out_channels == 16
    else:
        assert convs["blocks.0.block.6"].out_channels == convs["stem.0"].out_channels
    assert module(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_exclude_global_and_taylor(cnn_module, digits):
    example = (torch.from_numpy(digits["calib"].inputs["input"][:2]),)
    data = digits["train"].take(128)

    def loss(module: nn.Module) -> torch.Tensor:
        logits = module(torch.from_numpy(data.inputs["input"]))
        return nn.functional.cross_entropy(logits, torch.from_numpy(data.labels))

    config = PruneConfig(0.5, "taylor", global_ranking=True, exclude=("features.0",))
    info = prune_channels(cnn_module, config, example, loss)
    assert "features.0" not in info["channels"]
    assert cnn_module.get_submodule("features.0").out_channels == 32
    assert sum(a for _, a in info["channels"].values()) < sum(
        b for b, _ in info["channels"].values()
    )
    with pytest.raises(UsageError, match="not modules of this model"):
        prune_channels(cnn_module, PruneConfig(0.5, exclude=("nope",)), example)


def test_torchscript_cannot_be_pruned_structurally(cnn):
    scripted = torch.jit.script(copy.deepcopy(cnn))
    with pytest.raises(UsageError, match="TorchScript"):
        prune_channels(scripted, PruneConfig(0.5), (torch.randn(2, 1, 8, 8),))


@pytest.mark.parametrize(
    ("name", "message"), [("transformer", "pruning failed"), ("lstm", "no channels")]
)
def test_sequence_models_get_a_clear_error_and_a_way_out(name, message):
    module, example = _zoo_module(name)
    with pytest.raises(UsageError, match=message) as failure:
        prune_channels(module, PruneConfig(0.5), example)
    assert "unstructured" in str(failure.value)


def test_prune_options_without_a_ratio_are_rejected(example, tmp_path, cli):
    result = cli([example["model"], "--prune-method", "2:4", "-o", tmp_path / "o"])
    assert result.exit_code == 2 and "need --prune RATIO" in result.output
