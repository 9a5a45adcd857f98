"""compress bench, verify and package on the artifact of every other target available here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.bundle.archive import check_bundle
from compressor.judging.budget import Budget
from compressor.pipeline.run import run_pipeline
from compressor.recipe import Recipe
from targets.registry import describe_targets

# ONNX Runtime is covered in depth by test_bench.py, cli/test_verify.py and bundle/test_archive.py.
OTHER_TARGETS = [name for name, ok, _ in describe_targets() if ok and name != "onnx"]


@pytest.mark.parametrize("target", OTHER_TARGETS)
def test_bench_verify_package_work_on_the_targets_artifact(
    target: str, example: dict[str, Path], tmp_path: Path, cli
) -> None:
    out = tmp_path / "out"
    recipe = Recipe(
        model=str(example["model"]),
        target=target,
        precision="int8",
        calib=str(example["calib"]),
        eval=str(example["eval"]),
        output=str(out),
        runs=5,
        warmup=1,
        budget=Budget(max_accuracy_drop=5.0),
    )
    report = run_pipeline(recipe)
    artifact = out / report.artifact
    bench = cli(["bench", artifact, "--runs", "5", "--json"])
    assert bench.exit_code == 0, bench.output
    assert json.loads(bench.stdout)["results"][0]["latency_ms"]["p50"] > 0
    junit = tmp_path / "junit.xml"
    argv = ["verify", str(artifact), "--baseline", str(example["model"]), "--runs", "5"]
    argv += ["--eval", str(example["eval"]), "--max-accuracy-drop", "5", "--junit", str(junit)]
    verify = cli(argv)
    assert verify.exit_code == 0, verify.output
    assert 'name="max_accuracy_drop"' in junit.read_text()
    bundle = tmp_path / "bundle.tar.gz"
    assert cli(["package", out, "-o", bundle]).exit_code == 0
    check = cli(["package", "--check", bundle])
    assert check.exit_code == 0, check.output
    model = check_bundle(bundle).manifest["model"]
    assert model["target"] == target and model["inputs"], model
    proxy = report.compressed.proxy_for
    assert (proxy is None) == ("proxy" not in model["metrics_measured_in"])
    # a folder artifact (openvino's model.openvino/) ships every file inside it
    parts = (
        sorted(p for p in artifact.rglob("*") if p.is_file()) if artifact.is_dir() else [artifact]
    )
    assert parts and {str(p.relative_to(out)) for p in parts} <= set(
        check_bundle(bundle).manifest["files"]
    )
