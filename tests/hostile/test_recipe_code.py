"""A recipe or sweep file is data: code it names (model_factory, metric, pkg.module:function
data) is imported only when the command line says --allow-code; a file cannot grant it itself,
and without -o it cannot send outputs outside the current folder."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from compressor.recipe import Recipe
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

CODE_KEYS = ["metric", "model_factory", "eval", "calib", "train"]


def plant_module(folder: Path) -> tuple[str, Path]:
    """A module in folder (importable from there) whose import leaves a marker file; its name."""
    name = f"evil_{uuid.uuid4().hex[:12]}"  # new each time: an imported module is not re-run
    marker = folder / f"{name}.ran"
    (folder / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('payload')\n"
        "def fn(*args, **kwargs):\n    return [{'input': [[0.0]]}]\n"
    )
    return name, marker


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder of the run: the planted module is importable from it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("key", CODE_KEYS)
def test_a_recipe_file_naming_code_is_refused_without_allow_code(digits, home, key):
    module, marker = plant_module(home)
    recipe = home / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\n{key} = "{module}:fn"\n')
    before = snapshot(home)
    result = run_cli("--recipe", recipe, "-o", home / "out")
    assert_clean_refusal(result, 2, f"sets {key} = ", "--allow-code")
    assert not marker.exists()
    assert snapshot(home) == before


def test_a_stored_recipe_replayed_needs_allow_code_too(digits, home):
    """recipe.toml as an earlier run writes it (here with its --metric) is a file like any."""
    module, marker = plant_module(home)
    earlier = home / "earlier"
    earlier.mkdir()
    stored = Recipe(model=str(digits["model"]), metric=f"{module}:fn", output=str(earlier))
    (earlier / "recipe.toml").write_text(stored.to_toml())
    before = snapshot(home)
    result = run_cli("--recipe", earlier / "recipe.toml")
    assert_clean_refusal(result, 2, "sets metric = ", "--allow-code")
    assert not marker.exists() and snapshot(home) == before


def test_allow_code_lets_the_file_import_its_code(digits, home):
    """The control: the same kind of file runs its code once the command line says so."""
    module, marker = plant_module(home)
    recipe = home / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\ncalib = "{module}:fn"\nprecision = "int8"\n')
    result = run_cli("--recipe", recipe, "--allow-code", "-o", home / "out")
    assert "--allow-code" not in result.output
    assert marker.read_text() == "payload"


def test_a_flag_overriding_the_files_code_needs_no_permission(digits, home):
    module, marker = plant_module(home)
    recipe = home / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\neval = "{module}:fn"\n')
    args = ["--recipe", recipe, "--eval", digits["eval"], "--no-default-floor", "--runs", "2"]
    result = run_cli(*args, "--warmup", "1", "-o", home / "out")
    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_a_file_cannot_grant_itself_allow_code(digits, home):
    module, marker = plant_module(home)
    recipe = home / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\nallow_code = true\nmetric = "{module}:fn"\n')
    result = run_cli("--recipe", recipe, "-o", home / "out")
    assert_clean_refusal(result, 2, "allow_code", "--allow-code on the command line")
    assert not marker.exists()


SWEEP_PLACES = {
    "defaults": "[defaults]\n{key} = '{value}'\n[[models]]\nname = 'm'\nmodel = '{model}'\n",
    "model": "[[models]]\nname = 'm'\nmodel = '{model}'\n{key} = '{value}'\n",
    "variant": "[[models]]\nname = 'm'\nmodel = '{model}'\n[[variants]]\nname = 'v'\n"
    "{key} = '{value}'\n",
}


@pytest.mark.parametrize("place", SWEEP_PLACES)
@pytest.mark.parametrize("key", ["metric", "model_factory", "eval"])
def test_a_sweep_file_naming_code_is_refused_for_every_job(digits, home, key, place):
    module, marker = plant_module(home)
    body = SWEEP_PLACES[place].format(key=key, value=f"{module}:fn", model=digits["model"])
    sweep = home / "sweep.toml"
    sweep.write_text(body + "[grid]\ntargets = ['onnx']\nprecisions = ['fp32']\n")
    before = snapshot(home)
    result = run_cli("sweep", sweep, "-o", home / "out", "--workers", "1")
    assert_clean_refusal(result, 2, f"sets {key} = ", "--allow-code", "job 'm-onnx-fp32")
    assert not marker.exists() and snapshot(home) == before


def test_a_sweep_job_naming_code_is_refused(digits, home):
    module, marker = plant_module(home)
    sweep = home / "sweep.toml"
    sweep.write_text(
        f"[[models]]\nname = 'm'\nmodel = '{digits['model']}'\n"
        f"[[jobs]]\nmodel = 'm'\ntarget = 'onnx'\nprecision = 'fp32'\nmetric = '{module}:fn'\n"
    )
    before = snapshot(home)
    result = run_cli("sweep", sweep, "-o", home / "out", "--workers", "1")
    assert_clean_refusal(result, 2, "sets metric = ", "--allow-code")
    assert not marker.exists() and snapshot(home) == before


def test_a_sweep_with_allow_code_runs_the_files_code(digits, home):
    """The control: --allow-code on `compress sweep` lets the jobs import what they name."""
    module, marker = plant_module(home)
    sweep = home / "sweep.toml"
    sweep.write_text(
        f"[[models]]\nname = 'm'\nmodel = '{digits['model']}'\ncalib = '{module}:fn'\n"
        "[grid]\ntargets = ['onnx']\nprecisions = ['int8']\n"
    )
    result = run_cli("sweep", sweep, "-o", home / "out", "--workers", "1", "--allow-code")
    assert "--allow-code" not in result.output
    assert marker.read_text() == "payload"


# --- where outputs go: a recipe without -o stays in the current folder ----------------------


def test_a_recipes_output_outside_the_current_folder_needs_o(digits, tmp_path, monkeypatch):
    here, victim = tmp_path / "here", tmp_path / "victim"
    here.mkdir()
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    recipe = here / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\noutput = "{victim}"\nruns = 2\nwarmup = 1\n')
    monkeypatch.chdir(here)
    before = snapshot(tmp_path)
    result = run_cli("--recipe", recipe, "--no-default-floor")
    assert_clean_refusal(result, 2, "outside the current folder", "-o DIR")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["default out beside the recipe", "../up", "link"])
def test_every_way_out_of_the_current_folder_is_refused(digits, tmp_path, monkeypatch, where):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    line = {"../up": 'output = "../up"\n', "link": 'output = "exit"\n'}.get(where, "")
    if where == "link":  # inside by name, outside by where the link leads
        (here / "exit").symlink_to(elsewhere, target_is_directory=True)
    folder = elsewhere if where.startswith("default") else here
    recipe = folder / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\n{line}')
    monkeypatch.chdir(here)
    before = snapshot(tmp_path)
    assert_clean_refusal(run_cli("--recipe", recipe), 2, "outside the current folder")
    assert snapshot(tmp_path) == before


def test_o_on_the_command_line_decides_where_a_recipes_outputs_go(digits, tmp_path, monkeypatch):
    """The control: the same recipe runs when -o names the folder."""
    here, victim = tmp_path / "here", tmp_path / "victim"
    here.mkdir()
    recipe = here / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\noutput = "{victim}"\nruns = 2\nwarmup = 1\n')
    monkeypatch.chdir(here)
    result = run_cli("--recipe", recipe, "--no-default-floor", "-o", victim)
    assert result.exit_code == 0, result.output
    assert (victim / "report.json").is_file()
