"""Old torch checkpoints and forward() signatures with keyword arguments."""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
import torch

from compressor.model.example import DigitsCNN
from compressor.model.loading import build_from_factory as load_model_factory
from compressor.model.loading import load_model, resolve_input_specs
from foundation.errors import ModelLoadError, UsageError

RNG = np.random.default_rng(11)


@pytest.fixture
def legacy_cuda_state(tmp_path):
    """A legacy (pre-zip) state dict whose storages say they live on cuda:0, as a checkpoint
    saved on a GPU machine does; only the location tag written to the file is changed."""
    torch.manual_seed(0)
    module = DigitsCNN().eval()
    with mock.patch.object(torch.serialization, "location_tag", lambda storage: "cuda:0"):
        torch.save(module.state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(RuntimeError, match="CUDA"):  # plain torch.load cannot open it here
        torch.load(tmp_path / "old.pt", weights_only=True)
    return module, tmp_path / "old.pt"


@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_legacy_state_dict_with_cuda_tensors_compresses(wild, legacy_cuda_state, tmp_path, target):
    module, path = legacy_cuda_state
    np.savez(tmp_path / "calib.npz", input=RNG.random((32, 1, 8, 8), dtype=np.float32))
    out = tmp_path / target
    result = wild.run(
        path, "--model-factory", "compressor.model.example:DigitsCNN", "-t", target, "--int8",
        "--calib", tmp_path / "calib.npz", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert any("legacy-format" in note for note in report["notes"])
    x = RNG.random((1, 1, 8, 8), dtype=np.float32)
    want = module(torch.from_numpy(x)).detach().numpy()
    for arithmetic in wild.arithmetics_of(out):
        got = wild.artifact_outputs(out, target, {"input": x}, arithmetic)[0]
        assert np.argmax(got) == np.argmax(want) or np.abs(got - want).max() < 0.1, arithmetic


def test_corrupt_and_truncated_legacy_files_say_so(legacy_cuda_state, tmp_path):
    _, path = legacy_cuda_state
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:-100])  # a cut download
    with pytest.raises(ModelLoadError, match="legacy-format .* truncated"):
        load_model(tmp_path / "cut.pt", "compressor.model.example:DigitsCNN")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(ModelLoadError, match="neither a zip archive nor a legacy"):
        load_model(tmp_path / "junk.pt")


EMBEDDER = """
import torch


class Embedder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x, mask=None, embed: bool = False):
        if mask is not None:
            x = x * mask
        return x if embed else self.fc(x)


def build():
    torch.manual_seed(0)
    return Embedder()
"""


def test_keyword_arguments_are_not_inputs_unless_named(wild, tmp_path, monkeypatch):
    """forward(x, mask=None, embed=False): `x` is the input; --input-shape may add `mask`."""
    (tmp_path / "wild_embedder.py").write_text(EMBEDDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    factory = "wild_embedder:build"
    module = load_model_factory(factory)
    torch.save(module.state_dict(), tmp_path / "emb.pt")
    model = load_model(tmp_path / "emb.pt", factory)
    assert [s.name for s in model.inputs] == ["x"]
    specs = resolve_input_specs(model, {"x": [1, 8], "mask": [1, 8]}, [])
    assert [(s.name, s.shape) for s in specs] == [("x", ("batch", 8)), ("mask", ("batch", 8))]
    with pytest.raises(UsageError, match="without defaults"):
        resolve_input_specs(model, {"x": [1, 8], "embed": [1, 8]}, [])

    np.savez(tmp_path / "calib.npz", x=RNG.random((16, 8), dtype=np.float32))
    out = tmp_path / "out"
    flags = ["--model-factory", factory, "--int8", "--calib", tmp_path / "calib.npz"]
    result = wild.run(tmp_path / "emb.pt", *flags, "-o", out)
    assert result.exit_code == 0, result.output
    x = RNG.random((2, 8), dtype=np.float32)
    want = module(torch.from_numpy(x)).detach().numpy()
    for arithmetic in wild.arithmetics_of(out):  # exact and AVX2 pairs: every CPU
        got = wild.artifact_outputs(out, "onnx", {"x": x}, arithmetic)[0]
        np.testing.assert_allclose(got, want, atol=0.05, err_msg=str(arithmetic))

    mask = np.ones((16, 8), np.float32)
    np.savez(tmp_path / "calib2.npz", x=RNG.random((16, 8), dtype=np.float32), mask=mask)
    flags = ["--model-factory", factory, "--calib", tmp_path / "calib2.npz"]
    result = wild.run(tmp_path / "emb.pt", *flags, "--input-shape", "mask:1x8", "-o", out / "m")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "m" / "report.json").read_text())
    assert report["compressed"]["fidelity"]["cosine"] > 0.9999
