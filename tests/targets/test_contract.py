"""Contract test over every registered target, plus the test-only folder-artifact target
(tests/targets/fake_target): one protocol for lowering, running, describing and packaging."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

from compressor.bundle.archive import check_bundle, write_bundle
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from foundation.errors import DataError, TargetUnavailable, UnsupportedOp, UsageError
from targets.base import PRECISIONS, Target, TargetOptions, TorchSource
from targets.registry import (
    describe_targets,
    get_target,
    reference_runner,
    register_target,
    target_for_artifact,
    target_names,
    unregister_target,
)

FAKE = "fake"
ALL_TARGETS = [*target_names(), FAKE]


@pytest.fixture(autouse=True, scope="module")
def fake_registered():
    register_target(FAKE, "tests.targets.fake_target")
    yield
    unregister_target(FAKE)


@pytest.fixture(scope="module")
def fp32_onnx(example, tmp_path_factory):
    model = load_model(example["model"])
    tmp = tmp_path_factory.mktemp("contract")
    cleanup_onnx(export_onnx(model, model.inputs, tmp / "raw.onnx"), tmp / "fp32.onnx")
    return tmp / "fp32.onnx"


@pytest.fixture(scope="module")
def torch_source(example):
    """The torch model fp32_onnx comes from, for targets that lower from torch."""
    model = load_model(example["model"])
    return TorchSource(model.module, tuple(model.inputs))


@pytest.fixture
def available(torch_source):
    """`available(name)`: the target, bound to the example's torch model where it lowers from
    torch; skipped with its reason where its runtime is missing."""

    def get(name: str) -> Target:
        try:
            target = get_target(name)
        except TargetUnavailable as exc:
            pytest.skip(str(exc))
        ok, why = target.availability()
        if not ok:
            pytest.skip(why)
        return target.bind_torch(torch_source)

    return get


def _input(runner) -> dict[str, np.ndarray]:
    x = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    return {runner.inputs[0].name: x}


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_target_declares_capabilities(name):
    try:
        target = get_target(name)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    caps = target.capabilities
    assert target.name == name
    assert caps.precisions and set(caps.precisions) <= set(PRECISIONS)
    assert all(s.startswith(".") for s in caps.artifact.suffixes)
    assert caps.runtime and caps.runtime_package
    assert caps.quant_scheme.weight_type in ("int8", "uint8")
    assert isinstance(target.parse_options({}), TargetOptions)


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_target_lowers_fp32_and_its_runner_matches_onnxruntime(
    name, fp32_onnx, tmp_path, available
):
    target = available(name)
    options = target.parse_options({})
    artifact = target.lower(fp32_onnx, "fp32", tmp_path, options)
    assert artifact.path.exists() and artifact.path.parent == tmp_path
    assert artifact.options == options and artifact.seconds >= 0
    assert artifact.files and all(f.is_file() for f in artifact.files)
    model_files = [f for f in artifact.files if f not in artifact.extra_files]
    assert artifact.size_bytes == sum(f.stat().st_size for f in model_files)
    # lowering happened in a hidden folder that is gone; only the declared files are left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (artifact.path, *artifact.extra_files)
    )
    assert target_for_artifact(artifact.path).capabilities.artifact.matches(artifact.path)
    runner = target.open_runner(artifact.path, 1, artifact.options)
    got = next(iter(runner.run(_input(runner)).values()))
    ref_runner = reference_runner(fp32_onnx)
    want = next(iter(ref_runner.run(_input(ref_runner)).values()))
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-4)
    with pytest.raises(DataError, match="expects"):
        runner.run({runner.inputs[0].name: np.zeros((1, 1, 9, 9), np.float32)})


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_target_describes_its_artifact_io(name, fp32_onnx, tmp_path, available):
    target = available(name)
    artifact = target.lower(fp32_onnx, "fp32", tmp_path)
    io = target_for_artifact(artifact.path).describe_io(artifact.path)
    runner = target.open_runner(artifact.path, 1, artifact.options)
    assert [t["name"] for t in io["inputs"]] == [s.name for s in runner.inputs]
    assert [t["name"] for t in io["outputs"]] == [s.name for s in runner.outputs]
    for tensor in (*io["inputs"], *io["outputs"]):
        assert tensor["dtype"] == "float32" and tensor["quantization"] is None
    assert io["inputs"][0]["shape"][1:] == [1, 8, 8]


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_target_artifact_packages_with_every_file_hashed(name, fp32_onnx, tmp_path, available):
    target = available(name)
    out = tmp_path / "out"
    artifact = target.lower(fp32_onnx, "fp32", out)
    manifest = write_bundle(out, tmp_path / "bundle.tar.gz")
    runs_it = target_for_artifact(artifact.path)
    assert manifest["model"]["file"] == artifact.path.name
    assert manifest["model"]["target"] == runs_it.name
    assert manifest["model"]["runtime"] == runs_it.capabilities.runtime
    assert manifest["model"]["inputs"][0]["layout"] == "NCHW"
    hashed = {str(f.relative_to(out)) for f in artifact.files}
    assert hashed == set(manifest["files"])
    check = check_bundle(tmp_path / "bundle.tar.gz")
    assert check.ok and check.files_checked == len(hashed)


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_lower_refuses_a_precision_the_target_does_not_declare(
    name, fp32_onnx, tmp_path, available
):
    target = available(name)
    missing = [p for p in PRECISIONS if p not in target.capabilities.precisions]
    if not missing:
        pytest.skip(f"{name} declares every precision")
    with pytest.raises(UsageError, match=f"supports precisions.*not '{missing[0]}'"):
        target.lower(fp32_onnx, missing[0], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lower_calls_the_options_validate_and_parses_booleans_strictly(fp32_onnx, tmp_path):
    target = get_target(FAKE)
    options = target.parse_options({"fp32-only": "yes", "tag": "t1"})
    assert options.fp32_only is True and options.tag == "t1"
    with pytest.raises(UsageError, match="fp32_only=true refuses int8"):
        target.lower(fp32_onnx, "int8", tmp_path / "out", options)
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="fp32_only='maybe' is not a boolean"):
        target.parse_options({"fp32_only": "maybe"})


def test_a_failed_lowering_leaves_nothing_behind(fp32_onnx, tmp_path):
    target = get_target(FAKE)
    earlier = target.lower(fp32_onnx, "fp32", tmp_path, target.parse_options({"tag": "old"}))
    with pytest.raises(UnsupportedOp, match="fail_after_write"):
        target.lower(fp32_onnx, "fp32", tmp_path, target.parse_options({"fail_after_write": "1"}))
    assert [p.name for p in tmp_path.iterdir()] == [earlier.path.name]
    assert json.loads((earlier.path / "meta.json").read_text())["tag"] == "old"
    # a successful lowering replaces the earlier folder as a whole
    target.lower(fp32_onnx, "fp32", tmp_path, target.parse_options({"tag": "new"}))
    assert json.loads((earlier.path / "meta.json").read_text())["tag"] == "new"


def test_open_runner_refuses_a_missing_artifact(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        get_target(FAKE).open_runner(tmp_path / "model.fakepkg")


def test_describe_targets_lists_every_target_with_a_reason():
    rows = describe_targets()
    assert [r[0] for r in rows] == target_names() == ALL_TARGETS
    assert all(isinstance(r[2], str) and r[2] for r in rows)


def test_compress_runs_a_registered_folder_target_end_to_end(example, tmp_path, cli):
    out = tmp_path / "out"
    args = [example["model"], "--target", FAKE, "--int8", "--calib", example["calib"]]
    args += ["--eval", example["eval"], "--runs", "5", "--warmup", "1", "-O", "tag=e2e", "-o", out]
    result = cli(args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == FAKE and report["artifact"] == "model.fakepkg"
    assert report["compressed"]["runtime"] == "fake-ort"
    assert report["compressed"]["fidelity"]["top1_agreement"] >= 0.99
    assert report["qdq_reference"]["top1_agreement"] == 1.0  # same graph, same runtime
    assert report["artifact_info"]["tag"] == "e2e"
    assert report["compressed"]["size_bytes"] == sum(
        f.stat().st_size for f in (out / "model.fakepkg").iterdir()
    )
    assert json.loads((out / "model.fakepkg" / "meta.json").read_text())["precision"] == "int8"
    bundle = tmp_path / "bundle.tar.gz"
    assert cli(["package", out, "-o", bundle]).exit_code == 0
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["model"]["file"] == "model.fakepkg"
    assert manifest["model"]["target"] == FAKE and manifest["model"]["precision"] == "int8"
    assert {"model.fakepkg/model.onnx", "model.fakepkg/meta.json"} <= set(manifest["files"])
    assert manifest["model"]["inputs"][0]["quantization"] is None
    assert cli(["package", "--check", bundle]).exit_code == 0
    bench = cli(["bench", out / "model.fakepkg", "--runs", "3", "--json"])
    assert bench.exit_code == 0, bench.output
    assert "fake-ort" in bench.output
    # a second run into the same folder replaces the folder artifact as a whole
    again = [example["model"], "--target", FAKE, "--eval", example["eval"], "--runs", "3"]
    assert cli([*again, "-O", "tag=rerun", "-o", out]).exit_code == 0
    assert json.loads((out / "model.fakepkg" / "meta.json").read_text())["tag"] == "rerun"
    assert sorted(p.name for p in out.iterdir()) == ["model.fakepkg", "recipe.toml", "report.json"]


def test_compress_refuses_an_option_the_precision_cannot_take(example, tmp_path, cli):
    args = [example["model"], "--target", FAKE, "--int8", "--calib", example["calib"]]
    result = cli([*args, "-O", "fp32_only=true", "-o", tmp_path / "out"])
    assert result.exit_code == 2
    assert "fp32_only=true refuses int8" in result.output
    assert not (tmp_path / "out").exists()


def test_an_installed_package_registers_a_target_through_its_entry_point(tmp_path, monkeypatch):
    """A distribution declaring [project.entry-points."compress.targets"] adds its target."""
    from targets import registry

    dist = tmp_path / "fake_targets-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-targets\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[compress.targets]\nfake_ep = tests.targets.fake_target\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._entry_point_modules.cache_clear()
    try:
        assert "fake_ep" in target_names()
        assert get_target("fake_ep").capabilities.artifact.folder
    finally:
        monkeypatch.undo()
        registry._entry_point_modules.cache_clear()
    assert "fake_ep" not in target_names()


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_a_target_lowering_from_torch_refuses_to_lower_unbound(name, fp32_onnx, tmp_path):
    try:
        target = get_target(name)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    if not target.capabilities.needs_torch_module:
        assert target.bind_torch(None) is target  # ONNX-only targets are never copied
        return
    if not target.availability()[0]:
        pytest.skip(target.availability()[1])
    with pytest.raises(UsageError, match="lowers from the torch model"):
        target.lower(fp32_onnx, "fp32", tmp_path / "out")
    assert not (tmp_path / "out").exists()
