"""The rebuilt torch.export module: same outputs, real layers, working train()/eval()."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from compressor.model.loading import LoadedModel
from compressor.passes.trainable import trainable_module
from foundation.errors import UsageError


def test_rebuild_matches_the_program_and_has_real_layers(cnn_program, cnn_module, digits):
    x = torch.from_numpy(digits["eval"].inputs["input"][:16])
    with torch.no_grad():
        assert torch.allclose(cnn_module(x), cnn_program.module()(x), atol=1e-5)
    kinds = {type(m) for m in cnn_module.modules()}
    assert {nn.Conv2d, nn.BatchNorm2d, nn.Linear} <= kinds
    assert "features.0.weight" in cnn_module.state_dict()  # names survive the rebuild
    with pytest.raises(NotImplementedError):
        cnn_program.module().train()  # why the rebuild exists


def test_train_mode_updates_batchnorm_and_runs_dropout(cnn_program, digits):
    model = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.Dropout(0.5), nn.Linear(32, 10))
    model.eval()
    x = torch.from_numpy(digits["train"].inputs["input"][:32].reshape(32, 64))
    program = torch.export.export(model, (x,))
    rebuilt = trainable_module(LoadedModel(Path("m.pt2"), "exported", None, program, []))
    bn = rebuilt.get_submodule("1")
    assert isinstance(bn, nn.BatchNorm1d)
    assert any(isinstance(m, nn.Dropout) for m in rebuilt.modules())
    rebuilt.train()
    before = bn.running_mean.clone()
    first, second = rebuilt(x), rebuilt(x)
    assert not torch.equal(bn.running_mean, before)  # batch statistics in train mode
    assert not torch.allclose(first, second)  # dropout is active
    rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), rebuilt(x))


def test_onnx_models_are_refused_with_a_reason(tmp_path):
    with pytest.raises(UsageError, match="need a torch model"):
        trainable_module(LoadedModel(tmp_path / "m.onnx", "onnx"))
