"""Hostile model files: crafted .pt2 archives never run their payload without --trust-pickle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.archives import extra_member, pickled_sample_inputs, pickled_weight
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

CRAFTS = {
    "pickled-weight": (pickled_weight, "model_weights_config.json"),
    "pickled-sample-inputs": (pickled_sample_inputs, "data/sample_inputs/"),
}


def _commands(model: Path, digits: dict[str, Path], tmp: Path) -> dict[str, list]:
    return {
        "compress": [model, "--runs", "2", "--warmup", "1", "-o", tmp / "out"],
        "bench": ["bench", model, "--runs", "2", "--warmup", "1"],
        "verify": ["verify", digits["model"], "--baseline", model, "--runs", "2"],
    }


@pytest.mark.parametrize("craft", sorted(CRAFTS))
@pytest.mark.parametrize("command", ["compress", "bench", "verify"])
def test_crafted_pt2_is_refused_and_its_payload_never_runs(digits, tmp_path, craft, command):
    make, member = CRAFTS[craft]
    marker = tmp_path / "payload-ran"
    evil = make(digits["model"], tmp_path / "evil.pt2", marker)
    before = snapshot(tmp_path)
    result = run_cli(*_commands(evil, digits, tmp_path)[command])
    assert_clean_refusal(result, 2, member, "--trust-pickle")
    assert not marker.exists()
    assert snapshot(tmp_path) == before


def test_the_crafted_archives_are_real_threats_that_trust_pickle_lets_through(digits, tmp_path):
    """Proof the payloads work: with --trust-pickle torch runs them, as documented."""
    marker = tmp_path / "payload-ran"
    evil = pickled_sample_inputs(digits["model"], tmp_path / "evil.pt2", marker)
    run_cli("bench", evil, "--runs", "2", "--warmup", "1")
    assert not marker.exists()
    from compressor.model.loading import load_model

    loaded = load_model(evil, trust_pickle=True)
    assert marker.exists() and loaded.kind == "exported"


@pytest.mark.parametrize(
    "member",
    ["data/aotinductor/model/model.so", "data/weights/model.pt", "data/constants/opaque_obj_0"],
)
def test_members_torch_save_never_writes_are_refused(digits, tmp_path, member):
    evil = extra_member(digits["model"], tmp_path / "evil.pt2", member, b"\x7fELF")
    result = run_cli("bench", evil, "--runs", "2", "--warmup", "1")
    assert_clean_refusal(result, 2, member)


def test_an_untouched_rewrite_of_a_real_export_still_loads(digits, tmp_path):
    """The scan refuses payloads, not archives: a plain re-zip of a real export benches fine."""
    from tests.hostile.archives import rewrite

    copy = rewrite(digits["model"], tmp_path / "copy.pt2", lambda rel, data: None)
    result = run_cli("bench", copy, "--runs", "3", "--warmup", "1", "--json")
    assert result.exit_code == 0, result.output
    assert '"p50"' in result.output


def test_a_recipe_cannot_grant_itself_trust(digits, tmp_path):
    marker = tmp_path / "payload-ran"
    evil = pickled_weight(digits["model"], tmp_path / "evil.pt2", marker)
    recipe = tmp_path / "evil.toml"
    recipe.write_text(f'model = "{evil}"\ntrust_pickle = true\n')
    result = run_cli("--recipe", recipe, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "cannot grant itself trust", "--trust-pickle")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_sweep_file_cannot_grant_trust_either(digits, tmp_path):
    marker = tmp_path / "payload-ran"
    evil = pickled_weight(digits["model"], tmp_path / "evil.pt2", marker)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'[[models]]\nname = "evil"\nmodel = "{evil}"\ntrust_pickle = true\n'
        '[grid]\ntargets = ["onnx"]\nprecisions = ["fp32"]\n'
    )
    result = run_cli("sweep", sweep, "-o", tmp_path / "sweep-out", "--workers", "1")
    assert_clean_refusal(result, 2, "cannot grant itself trust")
    assert not marker.exists()


def test_recipes_written_by_a_trusted_run_do_not_record_trust(digits, tmp_path):
    out = tmp_path / "out"
    args = [digits["model"], "--trust-pickle", "--no-default-floor", "--runs", "2", "-o", out]
    assert run_cli(*args).exit_code == 0
    assert "trust_pickle" not in (out / "recipe.toml").read_text()
