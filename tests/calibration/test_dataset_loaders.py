"""Datasets and their loaders: .npz, image folders, entry points, and their errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from calibration.dataset import Dataset
from calibration.digits import digits_splits
from calibration.loaders import load_dataset
from foundation.errors import DataError
from targets.base import TensorSpec

SPEC = [TensorSpec("x", ("batch", 1, 8, 8))]


def test_npz_with_generic_key_binds_to_the_single_input(tmp_path):
    np.savez(tmp_path / "d.npz", input=np.ones((5, 1, 8, 8), np.float32), labels=np.arange(5))
    data = load_dataset(str(tmp_path / "d.npz")).bind(SPEC)
    assert data.names == ["x"]
    assert len(data) == 5
    assert data.labels.tolist() == [0, 1, 2, 3, 4]


def test_npz_with_wrong_key_names_the_model_inputs(tmp_path):
    spec = [TensorSpec("a", ("batch", 4)), TensorSpec("b", ("batch", 4))]
    np.savez(tmp_path / "d.npz", a=np.ones((3, 4)), c=np.ones((3, 4)))
    with pytest.raises(DataError, match=r"model's inputs are \['a', 'b'\]"):
        load_dataset(str(tmp_path / "d.npz")).bind(spec)


def test_npz_with_wrong_shape_says_expected_shape(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 1, 9, 9), np.float32))
    with pytest.raises(DataError, match=r"per-sample shape \[1, 9, 9\].*\[1, 8, 8\]"):
        load_dataset(str(tmp_path / "d.npz")).bind(SPEC)


def test_empty_and_corrupt_npz_are_rejected(tmp_path):
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 1, 8, 8), np.float32))
    with pytest.raises(DataError, match="no samples"):
        load_dataset(str(tmp_path / "empty.npz"))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="could not be read"):
        load_dataset(str(tmp_path / "bad.npz"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))


def test_nan_in_data_is_reported_with_count():
    arr = np.ones((4, 1, 8, 8), np.float32)
    arr[1, 0, 0, 0] = np.nan
    arr[2, 0, 0, 1] = np.inf
    with pytest.raises(DataError, match="2 NaN/Inf"):
        Dataset({"x": arr}).check_finite()


def test_label_count_mismatch_is_rejected():
    with pytest.raises(DataError, match="3 labels for 4 samples"):
        Dataset({"x": np.ones((4, 2))}, np.arange(3))


def test_image_folder_with_class_subfolders(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(
                tmp_path / cls / f"{i}.png"
            )
    data = load_dataset(str(tmp_path), {"x": (1, 3, 8, 8)})
    assert data.inputs["x"].shape == (6, 3, 8, 8)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert 0.0 <= data.inputs["x"].min() and data.inputs["x"].max() <= 1.0


def test_image_folder_without_images_or_shape_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="needs the model's input shape"):
        load_dataset(str(tmp_path))
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(str(tmp_path), {"x": (1, 1, 8, 8)})


def test_entry_point_yielding_sample_label_pairs(tmp_path, monkeypatch):
    (tmp_path / "mydata.py").write_text(
        "import numpy as np\n"
        "def samples():\n"
        "    for i in range(4):\n"
        "        yield np.full((1, 8, 8), i, np.float32), i % 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_dataset("mydata:samples").bind(SPEC)
    assert data.inputs["x"].shape == (4, 1, 8, 8)
    assert data.labels.tolist() == [0, 1, 0, 1]
    sys.modules.pop("mydata", None)


def test_entry_point_that_does_not_import():
    with pytest.raises(DataError, match="could not be imported"):
        load_dataset("no_such_module_xyz:samples")


def test_digits_splits_are_disjoint_and_labelled():
    splits = digits_splits()
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 1797
    assert splits["eval"].inputs["input"].shape[1:] == (1, 8, 8)
    assert set(np.unique(splits["train"].labels)) == set(range(10))
