"""Sweep files and sweep folders: job fields never become paths out of -o, no link under -o is
followed (first run or --resume), -o may not be a folder of the user's own files, and no reader
of a model (fingerprint, shipping, loading) touches a file outside the model's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.recipe import Recipe
from compressor.sweep.shipping import input_files, pack_input
from foundation.errors import ModelLoadError, UsageError
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

GRID = "[grid]\ntargets = ['onnx']\nprecisions = ['fp32']\n"


def model_entry(model: Path, extra: str = "") -> str:
    return f"[defaults]\nruns = 2\nwarmup = 1\n[[models]]\nname = 'm'\nmodel = '{model}'\n{extra}"


def write_sweep(folder: Path, body: str) -> Path:
    path = folder / "sweep.toml"
    path.write_text(body)
    return path


def sweep(path: Path, out: Path, *more: object) -> object:
    return run_cli("sweep", path, "-o", out, "--workers", "1", *more)


ESCAPES = {
    "job target": "[[jobs]]\nmodel = 'm'\ntarget = '../../victim/ESCAPE_T'\nprecision = 'fp32'\n",
    "job precision": "[[jobs]]\nmodel = 'm'\ntarget = 'onnx'\nprecision = '../../victim/ESCAPE_P'\n",
    "grid target": "[grid]\ntargets = ['../victim']\nprecisions = ['fp32']\n",
    "grid precision": "[grid]\ntargets = ['onnx']\nprecisions = ['../../victim/P']\n",
    "job id": "[[jobs]]\nmodel = 'm'\ntarget = 'onnx'\nprecision = 'fp32'\nid = '../victim/x'\n",
    "id with a newline": "[[jobs]]\nmodel = 'm'\ntarget = 'onnx'\nprecision = 'fp32'\n"
    'id = "x\\n"\n',
    "ids equal but for case": "[[jobs]]\nmodel = 'm'\ntarget = 'onnx'\nprecision = 'fp32'\n"
    "id = 'Job'\n[[jobs]]\nmodel = 'm'\ntarget = 'onnx'\nprecision = 'fp32'\nid = 'job'\n",
}


@pytest.mark.parametrize("case", ESCAPES)
def test_job_fields_never_become_paths_out_of_o(digits, tmp_path, case):
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "keep.txt").write_text("mine")
    path = write_sweep(tmp_path, model_entry(digits["model"]) + ESCAPES[case])
    before = snapshot(tmp_path)
    assert_clean_refusal(sweep(path, tmp_path / "runs" / "out"), 2)
    assert snapshot(tmp_path) == before  # not even -o was made


def test_a_model_name_ending_in_a_newline_is_refused(digits, tmp_path):
    body = model_entry(digits["model"]).replace("name = 'm'", 'name = "m\\n"') + GRID
    path = write_sweep(tmp_path, body)
    before = snapshot(tmp_path)
    assert_clean_refusal(sweep(path, tmp_path / "out"), 2, "must be letters")
    assert snapshot(tmp_path) == before


LINKED = ["m-onnx-fp32", ".sweep/jobs", ".sweep/logs", ".sweep", "summary.md", "deep/inside"]


@pytest.mark.parametrize("resume", [False, True], ids=["first run", "resume"])
@pytest.mark.parametrize("where", LINKED)
def test_a_link_anywhere_under_o_is_refused(digits, tmp_path, where, resume):
    """A planted link (to a folder or a file outside) would carry the sweep's writes out."""
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    (out / ".sweep").mkdir(parents=True)  # an earlier sweep's folder
    link = out / where
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists():
        link.rmdir()
    target = victim / "keep.txt" if where == "summary.md" else victim
    link.symlink_to(target)
    path = write_sweep(tmp_path, model_entry(digits["model"]) + GRID)
    before = snapshot(tmp_path)
    result = sweep(path, out, *(["--resume"] if resume else []))
    assert_clean_refusal(result, 2, "symbolic link", where.split("/")[-1])
    assert snapshot(tmp_path) == before


def test_o_holding_the_users_own_files_is_refused(digits, tmp_path, monkeypatch):
    """`compress sweep … -o .` once replaced the user's own summary.md and summary.json."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "summary.md").write_text("my notes")
    (tmp_path / "summary.json").write_text("{}")
    write_sweep(tmp_path, model_entry(digits["model"]) + GRID)
    before = snapshot(tmp_path)
    assert_clean_refusal(sweep(Path("sweep.toml"), Path(".")), 2, "no sweep wrote")
    assert snapshot(tmp_path) == before


# --- external data: one check before any byte is read, for every reader ----------------------


def external_model(folder: Path, location: str) -> Path:
    """y = x + w, w (64 floats) kept in external data at `location` (as the model names it)."""
    folder.mkdir(parents=True, exist_ok=True)
    weight = numpy_helper.from_array(np.ones((1, 64), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    loaded = onnx.load(str(path), load_external_data=False)
    for entry in loaded.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(loaded, str(path))
    return path


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    """256 bytes nobody may read through a model: enough for the 64 floats the model names."""
    path = tmp_path / "secret"
    path.write_bytes(b"SECRET-" * 40)
    return path


def hostile_locations(tmp_path: Path, secret: Path) -> dict[str, str]:
    return {"dotdot": "../secret", "absolute": str(secret), "link": "w.bin"}


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "link"])
def test_a_sweep_never_reads_or_ships_external_data_outside_the_model_folder(
    tmp_path, secret, kind
):
    model = external_model(tmp_path / "model", hostile_locations(tmp_path, secret)[kind])
    if kind == "link":  # the model's own data file swapped for a link to the secret
        (tmp_path / "model" / "w.bin").unlink()
        (tmp_path / "model" / "w.bin").symlink_to(secret)
    recipe = Recipe(model=str(model))
    with pytest.raises(ModelLoadError, match="external data"):
        input_files(recipe)  # what --resume's fingerprint hashes
    with pytest.raises(ModelLoadError, match="external data"):
        pack_input(recipe, "model")  # what --ray-address ships
    path = write_sweep(tmp_path, model_entry(model) + GRID)
    before = snapshot(tmp_path)
    for resume in ([], ["--resume"]):
        result = sweep(path, tmp_path / "out", *resume)
        assert_clean_refusal(result, 2, "external data")
        assert snapshot(tmp_path) == before  # refused before -o was made
    load = run_cli(model, "-o", tmp_path / "o2")  # and loading says the same
    assert_clean_refusal(load, 2, "external data")


def test_external_data_beside_the_model_still_travels(tmp_path):
    """The control: the model's own external data file is hashed and shipped as before."""
    model = external_model(tmp_path / "model", "w.bin")
    assert input_files(Recipe(model=str(model)))["model"] == [model, tmp_path / "model" / "w.bin"]


def test_a_link_in_an_input_folder_is_not_followed(digits, tmp_path, secret):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").symlink_to(secret)
    with pytest.raises(UsageError, match="symbolic link"):
        input_files(Recipe(model=str(digits["model"]), calib=str(images)))
    path = write_sweep(tmp_path, model_entry(digits["model"], f"calib = '{images}'\n") + GRID)
    before = snapshot(tmp_path)
    assert_clean_refusal(sweep(path, tmp_path / "out"), 2, "symbolic link")
    assert snapshot(tmp_path) == before


def test_external_data_in_a_constant_of_a_subgraph_is_checked_too(tmp_path):
    """Not only initializers: onnxruntime loads external data for any tensor, nested or not."""
    from compressor.trust.external_data import external_data_files

    value = helper.make_tensor("c", TensorProto.FLOAT, [1], [0.0])
    value.ClearField("float_data")
    value.data_location = TensorProto.EXTERNAL
    value.external_data.add(key="location", value="../secret")
    const = helper.make_node("Constant", [], ["c"], value=value)
    body = helper.make_graph(
        [const], "body", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])]
    )
    branch = helper.make_node("If", ["cond"], ["y"], then_branch=body, else_branch=body)
    graph = helper.make_graph(
        [branch],
        "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(ModelLoadError, match="not inside the model's folder"):
        external_data_files(helper.make_model(graph), tmp_path / "model.onnx")
