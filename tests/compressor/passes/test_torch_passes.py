"""compressor/passes/torch_passes.py through `compress MODEL --prune ... --distill ...`: end to end
through the real CLI and runtimes, bad settings refused, configs round-tripping through TOML."""

from __future__ import annotations

import json

import pytest

from compressor.recipe import PruneConfig, load_recipe


def _quick(files, out):
    return ["--eval", files["eval.npz"], "--runs", "10", "--warmup", "2", "-o", out]


def test_prune_distill_int8_end_to_end(cnn_files, tmp_path, cli):
    out = tmp_path / "out"
    args = [cnn_files["model.pt2"], "--prune", "0.5", "--prune-round-to", "8", "--distill"]
    args += ["--train", cnn_files["train.npz"], "--epochs", "3", "--lr", "0.003", "--seed", "1"]
    args += ["--int8", "--calib", cnn_files["calib.npz"], "--max-accuracy-drop", "2"]
    result = cli(args + _quick(cnn_files, out))
    assert result.exit_code == 0, result.output
    assert "torch passes" in result.output and "distilled" in result.output
    report = json.loads((out / "report.json").read_text())
    prune, distill = report["passes"]["prune"], report["passes"]["distill"]
    assert prune["after"]["params"] < 0.4 * prune["before"]["params"]
    assert prune["after"]["macs"] < 0.4 * prune["before"]["macs"]
    assert prune["after"]["onnx_bytes"] <= 0.6 * prune["before"]["onnx_bytes"]
    assert all(after % 8 == 0 for _, after in prune["channels"].values())
    assert distill["after"]["accuracy"] > prune["after"]["accuracy"]
    assert report["compressed"]["accuracy"] >= report["baseline"]["accuracy"] - 0.02
    assert report["compressed"]["size_bytes"] < 0.2 * report["baseline"]["size_bytes"]
    assert "int8" in report["passes"] and report["passed"]
    recipe = load_recipe(out / "recipe.toml")
    assert recipe.prune == PruneConfig(0.5, round_to=8) and recipe.distill.epochs == 3


def test_sparsity_on_torchscript_and_a_state_dict(cnn_files, tmp_path, cli):
    ts = tmp_path / "ts"
    args = [cnn_files["model.ts"], "--prune", "0.6", "--prune-method", "unstructured"]
    args += ["--distill", "--train", cnn_files["train.npz"], "--epochs", "1"]
    result = cli(args + _quick(cnn_files, ts))
    assert result.exit_code == 0, result.output
    passes = json.loads((ts / "report.json").read_text())["passes"]
    prune = passes["prune"]
    assert prune["model_sparsity"] > 0.5
    assert prune["after"]["onnx_gzip_bytes"] < 0.7 * prune["before"]["onnx_gzip_bytes"]
    assert passes["distill"]["after"]["nonzero_params"] <= prune["after"]["nonzero_params"]
    assert "not dense latency" in " ".join(result.output.split())
    sd = tmp_path / "sd"
    args = [cnn_files["state.pt"], "--model-factory", "compressor.model.example:DigitsCNN"]
    result = cli(args + ["--prune", "0.5", "--prune-method", "2:4"] + _quick(cnn_files, sd))
    assert result.exit_code == 0, result.output
    prune = json.loads((sd / "report.json").read_text())["passes"]["prune"]
    assert prune["layer_sparsity"]["features.3.weight"] == 0.5


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("model.pt2", ["--distill"], "--distill needs training data: pass --train"),
        ("model.pt2", ["--prune", "1.5"], "out of range"),
        ("model.pt2", ["--prune", "0.3", "--prune-method", "2:4"], "use --prune 0.5"),
        ("model.pt2", ["--distill-features", "features.3"], "only works with --distill"),
        ("model.ts", ["--prune", "0.5"], "TorchScript"),
        ("model.pt2", ["--prune", "0.5", "--prune-exclude", "nope"], "not modules of this model"),
    ],
)
def test_bad_pass_settings_exit_2_and_write_nothing(
    cnn_files, tmp_path, model, extra, message, cli
):
    out = tmp_path / "out"
    result = cli([cnn_files[model], *extra, "--eval", cnn_files["eval.npz"], "-o", out])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not out.exists()


def test_pruning_an_onnx_model_says_it_needs_torch(tmp_path, cli):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really onnx")
    result = cli([model, "--prune", "0.5", "-o", tmp_path / "out"])
    assert result.exit_code == 2
    assert "need a torch model" in " ".join(result.output.split())


def test_pass_configs_round_trip_through_toml(tmp_path):
    from compressor.recipe import DistillConfig, Recipe
    from foundation.errors import UsageError

    recipe = Recipe(
        model="m.pt2",
        train="train.npz",
        seed=3,
        prune=PruneConfig(0.4, "taylor", True, ("features.0",), 8),
        distill=DistillConfig(True, 5, 0.01, 32, "sgd", 2.0, 0.5, 2, ("features.3",)),
    )
    path = tmp_path / "recipe.toml"
    path.write_text(recipe.to_toml())
    assert load_recipe(path) == recipe
    path.write_text(recipe.to_toml().replace("round_to = 8", "round_to = 8\nratioo = 1"))
    with pytest.raises(UsageError, match=r"\[prune\] has unknown keys \['ratioo'\]"):
        load_recipe(path)
