"""What travels to a cluster node: an ONNX model with its external-data file, folders whole;
and what comes back is unpacked safely."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.recipe import Recipe
from compressor.sweep.shipping import (
    input_files,
    pack_folder,
    pack_input,
    unpack_folder,
    unpack_inputs,
)


def external_data_model(folder: Path) -> Path:
    """y = x @ W with W (64×64) stored in weights.bin beside model.onnx."""
    weight = numpy_helper.from_array(np.arange(64 * 64, dtype=np.float32).reshape(64, 64), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [weight],
    )
    path = folder / "model.onnx"
    onnx.save(
        helper.make_model(graph),
        str(path),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    return path


def test_onnx_external_data_and_folders_travel_and_load(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images" / "cat").mkdir(parents=True)
    model = external_data_model(src)
    (src / "images" / "cat" / "1.png").write_bytes(b"png")
    (src / "unrelated.txt").write_text("not shipped")
    recipe = Recipe(model=str(model), calib=str(src / "images"), eval="pkg.mod:data")
    files = input_files(recipe)
    assert files == {"model": [model, src / "weights.bin"], "calib": [src / "images/cat/1.png"]}
    packed = {field: pack_input(recipe, field) for field in files}
    node = unpack_inputs(recipe, packed, tmp_path / "node")
    assert node.eval == "pkg.mod:data"  # entry points are imported on the node, not shipped
    assert Path(node.calib, "cat", "1.png").read_bytes() == b"png"
    loaded = onnx.load(node.model)  # the weights came along and load from the copy
    assert numpy_helper.to_array(loaded.graph.initializer[0])[1, 2] == 66.0
    assert not (Path(node.model).parent / "unrelated.txt").exists()


def test_outputs_come_back_whole_and_paths_cannot_escape(tmp_path: Path) -> None:
    out = tmp_path / "job"
    (out / "sub").mkdir(parents=True)
    (out / "report.json").write_text("{}")
    (out / "sub" / "a.bin").write_bytes(b"a")
    dest = tmp_path / "DIR" / "job"
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from an earlier run")
    unpack_folder(pack_folder(out), dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "report.json",
        "sub/a.bin",
    ]
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.OutsideDestinationError):
        unpack_folder(evil.getvalue(), tmp_path / "DIR" / "evil")
    assert (
        not (tmp_path / "DIR" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    )
    assert (dest / "report.json").is_file()  # a failed unpack leaves other folders alone
