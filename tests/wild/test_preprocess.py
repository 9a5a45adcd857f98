"""--preprocess: image folders become inputs as the model was trained (mean/std, resize, crop,
layout, channel order), for --calib, --eval and bench --data, recorded in recipe and manifest."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import onnx
import pytest
from PIL import Image

from calibration.loaders import load_image_folder
from calibration.preprocess import Preprocess, parse_preprocess
from foundation.errors import UsageError

IMAGENET = "mean=0.485,0.456,0.406,std=0.229,0.224,0.225"


@pytest.fixture
def image_folder(tmp_path):
    """Two classes of 40x30 RGB images with random pixels."""
    rng = np.random.default_rng(2)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.png")
    return tmp_path / "imgs"


def test_parse_round_trips_and_rejects_bad_values():
    prep = parse_preprocess(f"{IMAGENET},resize=32,crop=24,layout=nhwc,channels=BGR")
    assert prep.mean == (0.485, 0.456, 0.406) and prep.crop == (24,) and prep.layout == "NHWC"
    assert parse_preprocess(prep.to_text()) == prep
    assert parse_preprocess("resize=32x48,scale=255").resize == (32, 48)
    for bad in ("mean=a", "layout=CHW", "gamma=2", "std=0", "crop=0", "scale=2", "0.5"):
        with pytest.raises(UsageError):
            parse_preprocess(bad)


def test_folder_arrays_follow_the_preprocessing(image_folder):
    prep = parse_preprocess(f"{IMAGENET},resize=24,crop=16x20,layout=NHWC,channels=BGR")
    data = load_image_folder(image_folder, {"img": (1, 16, 20, 3)}, prep)
    assert data.inputs["img"].shape == (12, 16, 20, 3) and list(data.labels) == [0] * 6 + [1] * 6
    with Image.open(image_folder / "cat" / "0.png") as img:
        resized = np.asarray(img.convert("RGB").resize((32, 24)), np.float32)  # shorter side 24
    crop = resized[4:20, 6:26][..., ::-1] / 255.0  # centre 16x20, BGR
    want = (crop - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(data.inputs["img"][0], want, rtol=1e-5, atol=1e-5)
    plain = load_image_folder(image_folder, {"img": (1, 3, 16, 20)}, Preprocess())
    assert plain.inputs["img"].shape == (12, 3, 16, 20) and plain.inputs["img"].max() <= 1.0
    with pytest.raises(UsageError, match="crop=16x20"):  # the crop is not the model's size
        load_image_folder(image_folder, {"img": (1, 3, 16, 20)}, parse_preprocess("crop=16"))
    with pytest.raises(UsageError, match="at least"):
        load_image_folder(image_folder, {"img": (1, 3, 16, 20)}, parse_preprocess("resize=10"))


def test_preprocess_reaches_calib_eval_recipe_manifest_and_bench(wild, image_folder, tmp_path, cli):
    model = wild.zoo_cnn(opset=13, ir_version=7, batch="N")
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 24
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 24
    onnx.save(model, tmp_path / "net.onnx")
    prep = f"{IMAGENET},resize=28,crop=24"
    out = tmp_path / "out"
    args = ["--int8", "--calib", image_folder, "--eval", image_folder, "--preprocess", prep]
    result = wild.run(tmp_path / "net.onnx", *args, "-o", out)
    assert result.exit_code == 0, result.output
    assert (
        'preprocess = "mean=0.485,0.456,0.406,std=0.229,0.224,0.225,resize=28,crop=24"'
        in (out / "recipe.toml").read_text()
    )
    report = json.loads((out / "report.json").read_text())
    assert report["compressed"]["accuracy"] is not None  # the folder's labels were read
    bundle = tmp_path / "b.tar.gz"
    packaged = cli(["package", out, "-o", bundle])
    assert packaged.exit_code == 0, packaged.output
    with tarfile.open(bundle) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("manifest.json"))
        manifest = json.loads(tar.extractfile(member).read())
    assert manifest["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert manifest["preprocessing"]["crop"] == [24]
    bench = cli(
        ["bench", out / "model.onnx", "--data", image_folder, "--preprocess", prep,
         "--input-shape", "data:1x3x24x24", "--runs", "2", "--warmup", "0", "--json"],
    )  # fmt: skip
    assert bench.exit_code == 0, bench.output
