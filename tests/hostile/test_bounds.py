"""Every count and size is bounded before any work: absurd run counts from flags, recipes and
sweep files, pixel-bomb resizes, zip-bomb data, padded .pt2 archives and ONNX files whose header
points outside their data all exit 2 with nothing written."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from compressor.recipe import COUNTS
from tests.hostile.cli_harness import assert_clean_refusal, run_cli, snapshot

HUGE = 2**63 - 1


@pytest.mark.parametrize("key", ["runs", "warmup", "calib_samples", "tune_trials"])
def test_a_recipe_with_an_absurd_count_is_refused(digits, tmp_path, key):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'model = "{digits["model"]}"\n{key} = {HUGE}\n')
    before = snapshot(tmp_path)
    result = run_cli("--recipe", recipe, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, key, f"at most {COUNTS[key][1]:,}")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["defaults", "variants"])
def test_a_sweep_with_an_absurd_count_is_refused_before_any_job(digits, tmp_path, where):
    table = "[defaults]\n" if where == "defaults" else '[[variants]]\nname = "v"\n'
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'{table}runs = {HUGE}\n[[models]]\nname = "d"\nmodel = "{digits["model"]}"\n'
        '[grid]\ntargets = ["onnx"]\nprecisions = ["fp32"]\n'
    )
    before = snapshot(tmp_path)
    result = run_cli("sweep", sweep, "-o", tmp_path / "out", "--workers", "1")
    assert_clean_refusal(result, 2, "runs", "at most")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "command", [["compress"], ["bench"], ["verify"]], ids=["compress", "bench", "verify"]
)
@pytest.mark.parametrize("flag", ["--runs", "--warmup"])
def test_absurd_run_counts_on_the_command_line_are_refused(digits, tmp_path, command, flag):
    args = {
        "compress": [digits["model"], "-o", tmp_path / "out"],
        "bench": ["bench", digits["model"]],
        "verify": ["verify", digits["model"], "--baseline", digits["model"]],
    }[command[0]]
    before = snapshot(tmp_path)
    result = run_cli(*args, flag, HUGE)
    assert_clean_refusal(result, 2, flag, "at most")
    assert snapshot(tmp_path) == before


@pytest.fixture()
def tiny_images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize(
    "resize, needle", [("100000", "sizes from 1 to"), ("16000", "pixels"), ("1x100000", "sizes")]
)
def test_a_resize_that_would_make_a_pixel_bomb_is_refused(digits, tiny_images, resize, needle):
    result = run_cli(
        "bench", digits["model"], "--runs", "2", "--data", tiny_images,
        "--preprocess", f"resize={resize}",
    )  # fmt: skip
    assert_clean_refusal(result, 2, "resize", needle)


def _zip_bomb(path: Path, megabytes: int) -> Path:
    """An .npz whose one member is `megabytes` MiB of float32 zeros, deflated to ~1/1000."""
    count = (megabytes << 20) // 4
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (count // 64, 1, 8, 8)}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("input.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(megabytes):
                member.write(chunk)
    return path


def test_a_zip_bomb_npz_is_refused_from_its_headers(digits, tmp_path):
    bomb = _zip_bomb(tmp_path / "bomb.npz", 96)
    assert bomb.stat().st_size < 1 << 20
    result = run_cli("bench", digits["model"], "--runs", "2", "--data", bomb)
    assert_clean_refusal(result, 2, "bomb.npz", "zip bomb")


def _onnx_with_external(folder: Path, opset: int = 17, **edit: str) -> Path:
    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = folder / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    if edit:
        model = onnx.load(path, load_external_data=False)
        entries = model.graph.initializer[0].external_data
        for key, value in edit.items():
            found = [e for e in entries if e.key == key]
            entry = found[0] if found else entries.add()
            entry.key, entry.value = key, value
        onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    "opset, edit, needle",
    [
        (99, {}, "opset 99"),
        (17, {"offset": "-5"}, "reads bytes -5"),
        (17, {"length": "100000"}, "+100000"),
        (17, {"offset": "60", "length": "64"}, "holds 64 bytes"),
        (17, {"offset": "ten"}, "damaged or forged"),
    ],
    ids=["opset-99", "negative-offset", "length-past-end", "offset-plus-length", "text-offset"],
)
def test_onnx_whose_header_points_outside_its_data_is_refused(tmp_path, opset, edit, needle):
    model = _onnx_with_external(tmp_path, opset, **edit)
    before = snapshot(tmp_path)
    result = run_cli(model, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "m.onnx", needle)
    assert snapshot(tmp_path) == before


def test_a_pt2_padded_with_a_huge_extra_member_is_refused_before_it_is_read(digits, tmp_path):
    padded = tmp_path / "padded.pt2"
    with zipfile.ZipFile(digits["model"]) as src, zipfile.ZipFile(padded, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        info = zipfile.ZipInfo(src.namelist()[0].split("/", 1)[0] + "/extra/padding.json")
        info.compress_type = zipfile.ZIP_DEFLATED  # 80 MiB declared, ~80 KB on disk
        with dst.open(info, "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(80):
                member.write(chunk)
    assert padded.stat().st_size < digits["model"].stat().st_size + (1 << 20)
    before = snapshot(tmp_path)
    result = run_cli(padded, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, "padding.json", "declares")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("key", ["epochs", "batch_size"])
def test_a_recipe_with_absurd_distill_counts_is_refused(digits, tmp_path, key):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'model = "{digits["model"]}"\ntrain = "{digits["calib"]}"\n'
        f"[distill]\nenabled = true\n{key} = {HUGE}\n"
    )
    before = snapshot(tmp_path)
    result = run_cli("--recipe", recipe, "-o", tmp_path / "out")
    assert_clean_refusal(result, 2, key.replace("_", "-"), "out of range")
    assert snapshot(tmp_path) == before
