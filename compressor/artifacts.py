"""Open any artifact or model file as a Runner and build its inputs (fixed-seed noise or data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from calibration.dataset import Dataset
from compressor.errors import UsageError
from compressor.latency import sample_feeds
from compressor.loading import TORCH_SUFFIXES, load_model, resolve_input_specs
from targets.base import Runner
from targets.registry import target_for_artifact

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
        return target_for_artifact(path).open_runner(path, threads)
    from targets.torch import TorchRunner

    model = load_model(path, model_factory, trust_pickle)
    if not model.is_torch:
        return target_for_artifact(path).open_runner(path, threads)
    specs = resolve_input_specs(model, input_shapes or {}, [data])
    return TorchRunner(model.module, specs, threads)


def resolve_artifact(path: Path) -> Path:
    """The file itself, or for a compress output folder the artifact its report.json names."""
    if not path.exists():
        raise UsageError(f"'{path}' does not exist; pass a model or artifact file.")
    if not path.is_dir():
        return path
    report = path / "report.json"
    try:
        name = json.loads(report.read_text()).get("artifact") if report.exists() else None
    except ValueError:
        name = None
    if not name or not (path / name).is_file():
        raise UsageError(
            f"'{path}' is a folder without a report.json naming its artifact; "
            "pass the model file itself."
        )
    return path / name


def artifact_size(path: Path) -> int:
    """Bytes on disk, counting an ONNX external-data file beside the model."""
    size = path.stat().st_size
    external = path.with_name(path.name + ".data")
    return size + (external.stat().st_size if external.exists() else 0)


def make_feeds(
    runner: Runner, batch: int = 1, data: Dataset | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Inputs for timing: the first samples of data, or fixed-seed noise shaped from the model."""
    batch = runner.fixed_batch or batch
    if data is None:
        return sample_feeds(runner, batch, seed)
    bound = data.bind(runner.inputs)
    reps = -(-batch // len(bound))  # ceil: repeat a small set up to the batch size
    return {k: np.concatenate([v] * reps)[:batch] for k, v in bound.inputs.items()}
