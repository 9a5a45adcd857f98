"""Model loading in every format, export to ONNX and graph cleanup, checked in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from compressor.model.export import export_onnx
from compressor.model.loading import complete_input_specs, load_model
from compressor.passes.cleanup import cleanup_onnx
from foundation.errors import ModelLoadError, UsageError
from targets.onnx.runner import OnnxRuntimeRunner
from targets.torch import TorchRunner

X = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)


def _onnx_matches_torch(model, specs, tmp_path, module):
    path = export_onnx(model, specs, tmp_path / "m.onnx")
    got = next(iter(OnnxRuntimeRunner(path).run({specs[0].name: X}).values()))
    want = module(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    return path


def test_pt2_loads_with_dynamic_batch_and_exports(example, example_module, tmp_path):
    model = load_model(example["model"])
    assert model.kind == "exported"
    assert model.inputs[0].name == "x" and model.inputs[0].shape == ("batch", 1, 8, 8)
    path = _onnx_matches_torch(model, model.inputs, tmp_path, example_module)
    assert max(o.version for o in onnx.load(str(path)).opset_import if o.domain == "") >= 17


def test_torchscript_loads_and_exports_with_shapes_from_data(example_module, tmp_path):
    scripted = torch.jit.trace(example_module, torch.from_numpy(X))
    scripted.save(str(tmp_path / "m.pt"))
    model = load_model(tmp_path / "m.pt")
    assert model.kind == "torchscript"
    specs = complete_input_specs(model.inputs, {model.inputs[0].name: ((1, 8, 8), None)})
    _onnx_matches_torch(model, specs, tmp_path, example_module)


def test_state_dict_needs_a_factory(example_module, tmp_path):
    torch.save(example_module.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(UsageError, match="--model-factory"):
        load_model(tmp_path / "sd.pt")
    model = load_model(tmp_path / "sd.pt", model_factory="compressor.model.example:DigitsCNN")
    assert model.kind == "module"
    specs = complete_input_specs(model.inputs, {"x": ((1, 8, 8), None)})
    _onnx_matches_torch(model, specs, tmp_path, example_module)


def test_pickled_module_needs_explicit_trust(example_module, tmp_path):
    torch.save(example_module, tmp_path / "whole.pt")
    with pytest.raises(ModelLoadError, match="--trust-pickle"):
        load_model(tmp_path / "whole.pt")
    model = load_model(tmp_path / "whole.pt", trust_pickle=True)
    out = TorchRunner(
        model.module, complete_input_specs(model.inputs, {"x": ((1, 8, 8), None)})
    ).run({"x": X})
    assert out["output"].shape == (3, 10)


@pytest.mark.parametrize("suffix", [".pt2", ".pt", ".onnx"])
def test_truncated_and_corrupt_files_are_clear_errors(example, tmp_path, suffix):
    src = example["model"].read_bytes()
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(src[: len(src) // 3])
    with pytest.raises(ModelLoadError, match="truncated|corrupt|not a valid"):
        load_model(bad)


def test_missing_empty_and_unknown_files(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope.pt2")
    (tmp_path / "empty.pt2").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        load_model(tmp_path / "empty.pt2")
    (tmp_path / "m.h5").write_bytes(b"xx")
    with pytest.raises(ModelLoadError, match="unknown suffix"):
        load_model(tmp_path / "m.h5")


def test_onnx_input_and_cleanup_folds_batchnorm(example_module, tmp_path):
    raw = tmp_path / "raw.onnx"
    torch.onnx.export(
        example_module,
        (torch.from_numpy(X),),
        str(raw),
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
        do_constant_folding=False,
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    assert any(n.op_type == "BatchNormalization" for n in onnx.load(str(raw)).graph.node)
    model = load_model(raw)
    assert model.kind == "onnx" and model.inputs[0].shape == ("n", 1, 8, 8)
    info = cleanup_onnx(raw, tmp_path / "clean.onnx")
    assert info["batchnorm_left"] == 0
    assert info["nodes_after"] < info["nodes_before"]
    got = OnnxRuntimeRunner(tmp_path / "clean.onnx").run({"x": X})
    want = example_module(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(next(iter(got.values())), want, atol=1e-4)


def test_cleanup_folds_batchnorm_after_bias_free_convs(tmp_path):
    from benchmarks.zoo import build_model

    model = build_model("resnet").eval()
    x = torch.from_numpy(X)
    torch.onnx.export(
        model,
        (x,),
        str(tmp_path / "raw.onnx"),
        dynamo=True,
        external_data=False,
        optimize=False,
        verbose=False,
    )
    raw = onnx.load(str(tmp_path / "raw.onnx"))
    assert sum(n.op_type == "BatchNormalization" for n in raw.graph.node) == 10
    info = cleanup_onnx(tmp_path / "raw.onnx", tmp_path / "clean.onnx")
    assert info["batchnorm_left"] == 0
    clean = onnx.load(str(tmp_path / "clean.onnx"))
    assert {o.domain for o in clean.opset_import} == {""}
    got = next(iter(OnnxRuntimeRunner(tmp_path / "clean.onnx").run({"x": X}).values()))
    np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-4)


def test_input_shape_takes_the_batch_first_as_documented(example_module, tmp_path, cli):
    torch.jit.trace(example_module, torch.zeros(2, 1, 8, 8)).save(str(tmp_path / "m.pt"))
    result = cli(
        [
            tmp_path / "m.pt",
            "--input-shape",
            "x:1x1x8x8",
            "--no-default-floor",
            "-o",
            tmp_path / "a",
        ]
    )
    assert result.exit_code == 0, result.output
    result = cli(
        [tmp_path / "m.pt", "--input-shape", "1x1x8x8", "--no-default-floor", "-o", tmp_path / "b"]
    )
    assert result.exit_code == 0, result.output
    bad = cli([tmp_path / "m.pt", "--input-shape", "y:1x1x8x8", "-o", tmp_path / "c"])
    assert bad.exit_code == 2 and "model's inputs are ['x']" in bad.output


def test_onnx_with_external_weights_is_loaded_whole(example, tmp_path, cli):
    out = tmp_path / "fp32"
    assert (
        cli([example["model"], "--eval", example["eval"], "--runs", "2", "-o", out]).exit_code == 0
    )
    model = onnx.load(str(out / "model.onnx"))
    onnx.save(
        model,
        str(tmp_path / "ext.onnx"),
        save_as_external_data=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    result = cli(
        [
            tmp_path / "ext.onnx",
            "--int8",
            "--calib",
            example["calib"],
            "--runs",
            "2",
            "-o",
            tmp_path / "o",
        ]
    )
    assert result.exit_code == 0, result.output
    (tmp_path / "ext.onnx.data").unlink()
    missing = cli([tmp_path / "ext.onnx", "-o", tmp_path / "o2"])
    assert missing.exit_code == 2 and "external data" in missing.output
