"""A `.pt2` whose JSON carries code (symbolic sizes, guards) or a second program with a legacy
pickle: refused on every surface that opens a model, naming the member and field, and the
payload never runs (issue 23, items 1 and 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.hostile.archives import (
    guards_payload,
    second_program,
    symbolic_size_payload,
)
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

CRAFTS = {
    "symbolic-size": (symbolic_size_payload, ["models/model.json", "expr_str", "__import__"]),
    "guards-code": (guards_payload, ["models/model.json", "guards_code"]),
    "second-program-constants": (second_program, ["models/evil.json"]),
    "second-program-weights": (
        lambda src, dst, marker: second_program(src, dst, marker, "weights"),
        ["models/evil.json"],
    ),
}


def _surfaces(model: Path, digits: dict[str, Path], tmp: Path) -> dict[str, list]:
    """Every command that opens a model file, pointed at the hostile one."""
    recipe = tmp / "recipe.toml"
    recipe.write_text(f'model = "{model}"\nruns = 2\nwarmup = 1\n')
    sweep = tmp / "sweep.toml"
    sweep.write_text(
        f'[[models]]\nname = "evil"\nmodel = "{model}"\n'
        '[grid]\ntargets = ["onnx"]\nprecisions = ["fp32"]\n'
    )
    folder = tmp / "shipped"
    folder.mkdir()
    shutil.copy(model, folder / "model.pt2")
    return {
        "compress": [model, "--runs", "2", "--warmup", "1", "-o", tmp / "out"],
        "bench": ["bench", model, "--runs", "2", "--warmup", "1"],
        "verify-baseline": ["verify", digits["model"], "--baseline", model, "--runs", "2"],
        "debug": ["debug", model, "--calib", digits["calib"], "--calib-samples", "8"],
        "sweep": ["sweep", sweep, "-o", tmp / "sweep-out", "--workers", "1"],
        "recipe": ["--recipe", recipe, "-o", tmp / "out"],
        "package": ["package", folder, "-o", tmp / "bundle.tar.gz"],
    }


SURFACES = ["compress", "bench", "verify-baseline", "debug", "sweep", "recipe", "package"]


@pytest.mark.parametrize("craft", sorted(CRAFTS))
@pytest.mark.parametrize("surface", SURFACES)
def test_code_in_a_pt2_is_refused_on_every_surface(digits, tmp_path, craft, surface):
    make, needles = CRAFTS[craft]
    marker = tmp_path / "payload-ran"
    evil = make(digits["model"], tmp_path / "evil.pt2", marker)
    command = _surfaces(evil, digits, tmp_path)[surface]
    before = snapshot(tmp_path)
    result = run_cli(*command)
    assert_clean_refusal(result, 2, *needles, "--trust-pickle")
    assert not marker.exists()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("craft", sorted(CRAFTS))
def test_the_crafts_are_real_threats_that_torch_runs(digits, tmp_path, craft):
    """Proof: torch.export.load (what --trust-pickle does) runs each payload."""
    import torch

    make, _ = CRAFTS[craft]
    marker = tmp_path / "payload-ran"
    evil = make(digits["model"], tmp_path / "evil.pt2", marker)
    try:
        program = torch.export.load(str(evil))
        program.module()(torch.zeros(2, 1, 8, 8))
    except Exception:
        pass  # the second-program crafts fail after their pickle ran
    assert marker.exists()


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda p: p.update(extra_field=1), "extra_field"),
        (lambda p: p["graph_module"].update(backdoor="x"), "backdoor"),
        (lambda p: p["graph_module"]["graph"]["nodes"][0].update(target="torch.load"), "target"),
        (
            lambda p: p["graph_module"]["graph"]["nodes"][0].update(
                target="torch.ops.load_library"
            ),
            "target",
        ),
        (
            lambda p: p["graph_module"]["module_call_graph"][0]["signature"].update(
                in_spec='[1, {"type": "collections.defaultdict", "context": "null", '
                '"children_spec": []}]'
            ),
            "in_spec",
        ),
        (lambda p: p["graph_module"]["metadata"].update(evil="1"), "metadata"),
        (lambda p: p.update(guards_code=["L['x\"'].size()[0] == 1"]), "guards_code"),
    ],
)
def test_unknown_fields_and_evaluated_names_are_refused(digits, tmp_path, edit, field):
    """The schema is a whitelist: unknown fields, operators outside aten/prims, and tree specs
    that import code are refused before torch reads the file."""
    from tests.hostile.archives import _edit_program

    evil = _edit_program(digits["model"], tmp_path / "evil.pt2", edit)
    result = run_cli("bench", evil, "--runs", "2", "--warmup", "1")
    assert_clean_refusal(result, 2, "models/model.json", field)


@pytest.mark.parametrize(
    "member",
    ["models/other.json", "data/weights/other.pt", "data/constants/model.pt", "notes/readme.txt"],
)
def test_any_member_outside_a_plain_save_is_refused_whatever_its_name(digits, tmp_path, member):
    from tests.hostile.archives import extra_member

    evil = extra_member(digits["model"], tmp_path / "evil.pt2", member, b"{}")
    result = run_cli("bench", evil, "--runs", "2", "--warmup", "1")
    assert_clean_refusal(result, 2, member)


def test_a_derived_dim_export_with_guards_still_loads(tmp_path):
    """torch writes guards_code for derived dims (y = x + 1): plain size comparisons pass."""
    import torch

    class Shifted(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x[1:] * 2 + y

    dim = torch.export.Dim("n", min=2, max=64)
    args = (torch.randn(5, 3), torch.randn(4, 3))
    program = torch.export.export(
        Shifted(), args, dynamic_shapes=({0: dim + 1}, {0: dim}), strict=False
    )
    assert program._guards_code  # the case this test is about
    model = tmp_path / "shifted.pt2"
    torch.export.save(program, str(model))
    from compressor.model.loading import load_model

    loaded = load_model(model)  # checked, loaded in the sandbox, then here
    assert [s.name for s in loaded.inputs] == ["x", "y"]
    assert any("sandboxed process" in note for note in loaded.notes)


def test_a_pt2e_quantized_export_still_loads(tmp_path):
    """torch's quantized_decomposed operators (PT2E int8 exports) pass the operator check."""
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401  registers the operators

    from compressor.model.loading import load_model

    ops = torch.ops.quantized_decomposed

    class FakeQuant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = ops.quantize_per_tensor.default(x, 0.1, 0, -128, 127, torch.int8)
            return ops.dequantize_per_tensor.default(q, 0.1, 0, -128, 127, torch.int8)

    dynamic = ({0: torch.export.Dim.DYNAMIC},)
    program = torch.export.export(FakeQuant(), (torch.randn(2, 4),), dynamic_shapes=dynamic)
    model = tmp_path / "fq.pt2"
    torch.export.save(program, str(model))
    assert load_model(model).inputs[0].shape == ("batch", 4)
