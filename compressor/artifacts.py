"""Open any artifact or model file as a Runner and build its inputs (fixed-seed noise or data)."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

from calibration.dataset import Dataset
from calibration.preprocess import Preprocess
from compressor.errors import UsageError
from compressor.loading import TORCH_SUFFIXES, load_model, resolve_input_specs
from targets.base import Runner, Target
from targets.registry import get_target, is_artifact, target_for_artifact, torch_runner

# Model files the torch baseline runner opens; every other suffix goes to a target's runner.
TORCH_MODEL_SUFFIXES = (".pt2", *TORCH_SUFFIXES)


def open_artifact(
    path: str | Path,
    threads: int = 1,
    data: Dataset | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    model_factory: str | None = None,
    trust_pickle: bool = False,
) -> Runner:
    """A Runner for a .pt2/TorchScript model (torch) or any target artifact (.onnx, .tflite, ...).

    input_shapes (name -> shape with batch) or data fill the shapes TorchScript does not record.
    """
    path = resolve_artifact(Path(path))
    if path.suffix.lower() not in TORCH_MODEL_SUFFIXES:
        return open_target_runner(path, threads)
    model = load_model(path, model_factory, trust_pickle)
    if not model.is_torch:
        return target_for_artifact(path).open_runner(path, threads)
    specs = resolve_input_specs(model, input_shapes or {}, [data])
    return torch_runner(model.module, specs, threads)


def load_data_for(
    spec: str,
    path: str | Path,
    input_shapes: dict[str, list[int]] | None = None,
    model_factory: str | None = None,
    trust_pickle: bool = False,
    preprocess: Preprocess | None = None,
    batch_axes: dict[str, int] | None = None,
) -> Dataset:
    """Load data for an artifact as `compress` would: an image folder is resized to the model's
    fixed input shape (and preprocessed as --preprocess says), arrays follow --batch-axis.

    --input-shape wins; otherwise the shape comes from the model itself (.pt2, ONNX, targets).
    """
    from calibration.layout import DataLayout
    from calibration.loaders import load_dataset
    from compressor.dims import check_batch_axes, static_shapes

    shapes, specs = dict(input_shapes or {}), None
    if batch_axes or (Path(spec).is_dir() and not shapes):
        try:
            runner = open_artifact(path, 1, None, input_shapes, model_factory, trust_pickle)
        except UsageError:  # TorchScript records no shapes: the loader says to pass them
            return load_dataset(spec, shapes, None, preprocess)
        try:
            specs = list(runner.inputs)
        finally:
            runner.close()
        shapes = shapes or {s.name: [1, *s.shape[1:]] for s in specs}
    layout = None
    if batch_axes:
        check_batch_axes(specs, batch_axes)
        layout = DataLayout(dict(batch_axes), static_shapes(specs))
    return load_dataset(spec, shapes, layout, preprocess)


def open_target_runner(path: Path, threads: int = 1) -> Runner:
    """Open a target artifact with the target and runtime options its compress run recorded.

    When a report.json beside the artifact names it, the runner comes from that report's target
    (so a TensorRT proxy .onnx keeps proxy_for), opened with the options recorded in
    recipe.toml [target_options] (else in report.json artifact_info). Without a report the
    target is picked by the artifact's layout and opened with its defaults.
    """
    from compressor.manifest import sibling_report

    report = sibling_report(path)
    if not report.get("target"):
        return target_for_artifact(path).open_runner(path, threads)
    target = get_target(report["target"])
    options = target.parse_options(recorded_options(path, report, target))
    return target.open_runner(path, threads, options)


def recorded_options(path: Path, report: dict, target: Target) -> dict:
    """The -O options of the run that wrote path: recipe.toml, else scalars in artifact_info."""
    if target.options_type is None:
        return {}
    recipe = path.parent / "recipe.toml"
    try:
        saved = tomllib.loads(recipe.read_text()) if recipe.is_file() else {}
    except (OSError, ValueError):  # unreadable or not TOML: fall back to the report
        saved = {}
    if saved.get("target") == target.name and isinstance(saved.get("target_options"), dict):
        return dict(saved["target_options"])
    info = report.get("artifact_info") or {}
    fields = {f.name for f in dataclasses.fields(target.options_type)}
    scalar = (str, bool, int, float)
    return {k: v for k, v in info.items() if k in fields and isinstance(v, scalar)}


def resolve_artifact(path: Path) -> Path:
    """The artifact itself (a file, or a folder a target declares), or for a compress output
    folder the artifact its report.json names."""
    if not path.exists():
        raise UsageError(f"'{path}' does not exist; pass a model or artifact file.")
    if not path.is_dir() or is_artifact(path):
        return path
    report = path / "report.json"
    try:
        name = json.loads(report.read_text()).get("artifact") if report.exists() else None
    except ValueError:
        name = None
    if not name or not (path / name).exists():
        raise UsageError(
            f"'{path}' is a folder without a report.json naming its artifact; "
            "pass the model file itself."
        )
    return path / name


def artifact_size(path: Path) -> int:
    """Bytes on disk, counting every file of a folder artifact and an ONNX external-data file
    beside the model."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    size = path.stat().st_size
    external = path.with_name(path.name + ".data")
    return size + (external.stat().st_size if external.exists() else 0)
