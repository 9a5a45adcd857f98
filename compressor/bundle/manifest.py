"""What a device team needs to know about an artifact: I/O, quantization, precision, provenance."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import onnx

from compressor import __version__
from compressor.report.run_record import load_run, sibling_report
from foundation.errors import CompressError, UnsafeModelError
from targets import registry

FORMAT = "edge-compressor-bundle"
FORMAT_VERSION = 1
CHANNELS_LIKE = (1, 3, 4)
# Torch model files: described by running them once (an artifact's target describes it).
TORCH_FILE_SUFFIXES = (".pt2", ".pt", ".ts", ".pth")


def artifact_precision(path: Path) -> str:
    """Precision from the report.json beside the artifact, else read off an ONNX graph."""
    recorded = sibling_report(path).get("precision")
    if recorded:
        return recorded
    if path.suffix.lower() == ".onnx":
        return onnx_precision(onnx.load(str(path), load_external_data=False))
    return "unknown"


def onnx_precision(model: onnx.ModelProto) -> str:
    """fp32, fp16, int8 (static Q/DQ) or dynamic, from the ops and weight types in the graph."""
    ops = {node.op_type for node in model.graph.node}
    if ops & {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"}:
        return "dynamic"
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"}:
        return "int8"
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        return "fp16"
    return "fp32"


def guess_layout(shape: list, recorded: str | None = None) -> str | None:
    """NCHW/NHWC for 4-D tensors: the layout the compress run recorded, else read off where a
    channel-like dim sits, else "unknown" (a wrong guess would feed a device scrambled pixels)."""
    if len(shape) == 2:
        return "NC"
    if len(shape) != 4:
        return None
    if recorded:
        return recorded
    first, last = shape[1], shape[3]
    if first in CHANNELS_LIKE and last not in CHANNELS_LIKE:
        return "NCHW"
    if last in CHANNELS_LIKE and first not in CHANNELS_LIKE:
        return "NHWC"
    return "unknown"


def recorded_layout(report: dict, recipe: dict | None) -> str | None:
    """The 4-D I/O layout the run recorded: artifact_info io_layout, else the nhwc_io option."""
    recorded = str((report.get("artifact_info") or {}).get("io_layout") or "")
    for layout in ("NHWC", "NCHW"):
        if layout in recorded:
            return layout
    options = (recipe or {}).get("target_options") or {}
    if "nhwc_io" in options:
        return "NHWC" if options["nhwc_io"] else "NCHW"
    return None


def _tensor(name: str, shape: list, dtype: str, quant: dict | None = None) -> dict:
    return {
        "name": name,
        "shape": shape,
        "dtype": dtype,
        "layout": guess_layout(shape),
        "quantization": quant,
    }


def _torch_io(path: Path) -> dict:
    """A torch model file: the specs its runner declares after one run."""
    from compressor.judging.latency import timing_feeds
    from compressor.model.artifacts import open_artifact

    with open_artifact(path) as runner:
        runner.run(timing_feeds(runner))
        return {
            "inputs": [_tensor(s.name, list(s.shape), s.dtype) for s in runner.inputs],
            "outputs": [_tensor(s.name, list(s.shape), s.dtype) for s in runner.outputs],
        }


def _target_io(path: Path) -> dict:
    """An artifact: I/O as the target that runs it describes the file."""
    io = registry.describe_io(path)
    return {
        side: [_tensor(t["name"], t["shape"], t["dtype"], t["quantization"]) for t in io[side]]
        for side in ("inputs", "outputs")
    }


def describe_io(path: Path) -> dict:
    """Model I/O names, shapes, dtypes, layout and quantization, read from the artifact itself."""
    reader = _torch_io if path.suffix.lower() in TORCH_FILE_SUFFIXES else _target_io
    try:
        return reader(path)
    except UnsafeModelError:
        raise  # a file that would run code is refused, not described as unreadable
    except (CompressError, ImportError, RuntimeError, ValueError) as exc:
        return {"inputs": [], "outputs": [], "note": f"I/O not readable on this machine: {exc}"}


def apply_layout(io: dict, layout: str | None) -> dict:
    """io with every 4-D tensor's layout set to the recorded one (when there is one)."""
    for tensor in (*io.get("inputs", []), *io.get("outputs", [])):
        tensor["layout"] = guess_layout(tensor["shape"], layout)
    return io


def runtime_version(runtime: str, report: dict) -> str | None:
    """The runtime version the report recorded, else the one installed here (litert/default → litert)."""
    return recorded_runtime_version(runtime, report) or installed_version(runtime)


def recorded_runtime_version(runtime: str, report: dict) -> str | None:
    """The version the compress run recorded: its environment, else artifact_info's runtime
    string (e.g. "litert (ai-edge-litert 2.3.0)")."""
    base = runtime.split("/")[0]
    recorded = (report.get("environment") or {}).get(base)
    if recorded:
        return recorded
    label = str((report.get("artifact_info") or {}).get("runtime") or "")
    found = re.search(r"\d+(?:\.\d+)+\S*?(?=\)|$|\s)", label) if label.startswith(base) else None
    return found.group(0) if found else None


def installed_version(runtime: str) -> str | None:
    """The version of the runtime's package installed on this machine."""
    base = runtime.split("/")[0]
    try:
        return importlib.metadata.version(registry.runtime_package(base))
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def _version_fields(runtime: str | None, report: dict) -> dict:
    """runtime_version plus where it came from: the report, or this packaging machine."""
    if not runtime:
        return {"runtime_version": None, "runtime_version_source": None}
    recorded = recorded_runtime_version(runtime, report)
    if recorded:
        return {"runtime_version": recorded, "runtime_version_source": "report"}
    return {
        "runtime_version": installed_version(runtime),
        "runtime_version_source": "packaging machine (the report did not record it)",
    }


def build_manifest(
    folder: Path, model_file: str, files: dict[str, dict], preprocessing: dict
) -> dict:
    """The manifest.json of a bundle; deterministic for the same folder (no clocks, no hosts)."""
    record = load_run(folder)
    report, recipe = record.report, record.recipe
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool": {"name": "edge-compressor", "version": __version__},
        "model": _model_entry(folder, model_file, report, recipe),
        "preprocessing": preprocessing or _recorded_preprocess(recipe),
        **_run_results(report),
        "recipe": recipe,
        "files": files,
    }


def _model_entry(folder: Path, model_file: str, report: dict, recipe: dict | None) -> dict:
    """The artifact: its target, runtime and versions, precision and I/O with their layout."""
    model_path = folder / model_file
    measured_in = (report.get("compressed") or {}).get("runtime")
    proxy_for = (report.get("compressed") or {}).get("proxy_for")
    runtime = proxy_for or measured_in or _runtime_of(model_path)
    return {
        "file": model_file,
        "extra_files": report.get("extra_files", []),
        "target": report.get("target") or target_of(model_path),
        "runtime": runtime,
        **_version_fields(runtime, report),
        "precision": report.get("precision") or artifact_precision(model_path),
        "metrics_measured_in": f"{measured_in} (proxy for {proxy_for})"
        if proxy_for
        else measured_in,
        **apply_layout(describe_io(model_path), recorded_layout(report, recipe)),
    }


def _run_results(report: dict) -> dict:
    """What the run measured and decided, as its report recorded it."""
    return {
        "metrics": {
            k: report[k] for k in ("baseline", "compressed", "fp32_reference") if k in report
        },
        "budgets": report.get("budgets", []),
        "passed": report.get("passed"),
        "environment": report.get("environment"),
        "notes": report.get("notes", []),
        "artifact_info": report.get("artifact_info", {}),
        **({"int8_arithmetic": report["int8_arithmetic"]} if "int8_arithmetic" in report else {}),
    }


def _recorded_preprocess(recipe: dict | None) -> dict:
    """The run's --preprocess, parsed, when package --preprocess gives none."""
    from calibration.preprocess import parse_preprocess

    prep = parse_preprocess((recipe or {}).get("preprocess"))
    return prep.to_dict() if prep else {}


def target_of(path: Path) -> str | None:
    """The target that made this artifact (its report says), else the one that runs its suffix."""
    recorded = sibling_report(path).get("target")
    if recorded:
        return recorded
    if path.suffix.lower() in TORCH_FILE_SUFFIXES:
        return "torch"
    try:
        return registry.target_for_artifact(path).name
    except CompressError:
        return None


def _runtime_of(path: Path) -> str | None:
    try:
        return registry.target_for_artifact(path).capabilities.runtime
    except CompressError:
        return "torch" if path.suffix.lower() == ".pt2" else None
