"""Open any artifact or model file as a Runner and build its inputs (fixed-seed noise or data)."""

from __future__ import annotations

from pathlib import Path

from calibration.dataset import Dataset
from compressor.model.loading import TORCH_SUFFIXES, load_model, resolve_input_specs
from compressor.report.run_record import artifact_record, read_run
from foundation.errors import UsageError
from targets.base import Runner
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


def open_target_runner(path: Path, threads: int = 1) -> Runner:
    """Open a target artifact with the target and runtime options its compress run recorded.

    When a report.json beside the artifact names it, the runner comes from that report's target
    (so a TensorRT proxy .onnx keeps proxy_for), opened with the options recorded in
    recipe.toml [target_options] (else in report.json artifact_info). Without a report the
    target is picked by the artifact's layout and opened with its defaults.
    """
    record = artifact_record(path)
    if record is None or not record.report.get("target"):
        return target_for_artifact(path).open_runner(path, threads)
    target = get_target(record.report["target"])
    options = target.parse_options(record.target_options(target))
    return target.open_runner(path, threads, options)


def resolve_artifact(path: Path) -> Path:
    """The artifact itself (a file, or a folder a target declares), or for a compress output
    folder the artifact its report.json names."""
    if not path.exists():
        raise UsageError(f"'{path}' does not exist; pass a model or artifact file.")
    if not (path.is_file() or path.is_dir()):  # a FIFO would block the run forever
        raise UsageError(f"'{path}' is not a regular file (a pipe or device); pass a model file.")
    if not path.is_dir() or is_artifact(path):
        return path
    artifact = read_run(path).artifact_file()
    if artifact is None:
        raise UsageError(
            f"'{path}' is a folder without a report.json naming its artifact; "
            "pass the model file itself."
        )
    return artifact


def artifact_size(path: Path) -> int:
    """Bytes on disk, counting every file of a folder artifact and an ONNX external-data file
    beside the model."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    size = path.stat().st_size
    external = path.with_name(path.name + ".data")
    return size + (external.stat().st_size if external.exists() else 0)
