"""Find targets by name; their modules import lazily so a missing runtime hides only its target.

A target outside this package registers with register_target(name, "pkg.module") or through
the `compress.targets` entry-point group (name = "pkg.module"); the module exports TARGET.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from functools import cache
from pathlib import Path

from foundation.errors import TargetUnavailable, UsageError
from targets.arithmetic import EXACT
from targets.base import Runner, Target, TensorSpec

EXACT_ARITHMETIC = EXACT.name  # the Q/DQ graph as written: what measures int8 by default

ENTRY_POINT_GROUP = "compress.targets"

TARGET_MODULES: dict[str, str] = {
    "onnx": "targets.onnx",
    "tflite": "targets.tflite",
    "tensorrt": "targets.tensorrt",
    "openvino": "targets.openvino",
    "executorch": "targets.executorch",
}


def register_target(name: str, module_path: str) -> None:
    """Make the target exported as TARGET by module_path known as name (replaces a same name)."""
    TARGET_MODULES[name] = module_path


def unregister_target(name: str) -> None:
    """Forget a target registered with register_target."""
    TARGET_MODULES.pop(name, None)


@cache
def _entry_point_modules() -> dict[str, str]:
    """Targets installed packages declare in the compress.targets entry-point group."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {ep.name: ep.value for ep in found}


def _modules() -> dict[str, str]:
    return {**_entry_point_modules(), **TARGET_MODULES}


def target_names() -> list[str]:
    """Every registered target name, available here or not."""
    return list(_modules())


def get_target(name: str) -> Target:
    """The target called name; raises a UsageError listing the known ones for a bad name."""
    modules = _modules()
    if name not in modules:
        raise UsageError(f"Unknown target '{name}'; choose one of {target_names()}.")
    try:
        module = importlib.import_module(modules[name])
    except ImportError as exc:
        raise TargetUnavailable(
            f"Target '{name}' cannot load on this machine: {exc}. "
            f"Install its extra: pip install -e '.[{name}]'."
        ) from exc
    return module.TARGET


def loaded_targets() -> list[Target]:
    """Every registered target whose module imports here."""
    found = []
    for name in _modules():
        try:
            found.append(get_target(name))
        except TargetUnavailable:
            continue
    return found


def target_for_artifact(path: Path) -> Target:
    """The target whose declared artifact layout matches path (.onnx, .tflite, a .mlpackage
    folder, ...)."""
    for target in loaded_targets():
        if target.capabilities.artifact.matches(path):
            return target
    raise UsageError(
        f"No available target runs '{path.suffix.lower()}' "
        f"{'folders' if path.is_dir() else 'files'} ('{path}'). Known artifacts: "
        f"{sorted(artifact_suffixes())}; `compress targets` says what is missing on this machine."
    )


def artifact_suffixes(folder: bool | None = None) -> set[str]:
    """Suffixes of the artifacts loaded targets write or open (only folder or file ones when
    folder says)."""
    return {
        suffix
        for target in loaded_targets()
        for suffix in target.capabilities.artifact.suffixes
        if folder is None or target.capabilities.artifact.folder == folder
    }


def is_artifact(path: Path) -> bool:
    """Whether some loaded target's artifact layout matches path."""
    return any(t.capabilities.artifact.matches(path) for t in loaded_targets())


def describe_io(path: Path) -> dict:
    """The artifact's I/O as the target that runs it describes it (see Target.describe_io)."""
    return target_for_artifact(path).describe_io(path)


def runtime_package(runtime: str) -> str:
    """The distribution carrying a runtime ("litert" or "litert/builtin" → its package)."""
    base = runtime.split("/")[0]
    for target in loaded_targets():
        if target.capabilities.runtime == base and target.capabilities.runtime_package:
            return target.capabilities.runtime_package
    return base


def reference_runner(
    onnx_path: Path, threads: int = 1, proxy_for: str | None = None, arithmetic: str = "host"
) -> Runner:
    """The reference runtime for (fp32 or Q/DQ) ONNX comparisons: onnxruntime on CPU, in the
    int8 arithmetic named ("host": this CPU's kernels; else exact or an emulated one). The one
    door through which everything that measures int8 opens its session."""
    from targets.onnx.runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(onnx_path, threads, proxy_for=proxy_for, arithmetic=arithmetic)


def host_int8() -> dict:
    """This machine's int8 features and the arithmetic its onnxruntime kernels compute in
    (arch, int8_features, features_from, arithmetic, profile), as reports record them."""
    from targets.arithmetic import host_cpu

    return host_cpu().to_dict()


def unemulated_int8_nodes(onnx_path: Path) -> list[dict]:
    """Integer nodes of an ONNX graph whose int8 arithmetic no emulation models (node, op, why):
    their figures are this host's kernels in every arithmetic."""
    import onnx

    from targets.arithmetic import unemulated_nodes

    return unemulated_nodes(onnx.load(str(onnx_path)))


def torch_runner(module: object, inputs: list[TensorSpec], threads: int = 1) -> Runner:
    """The baseline runner for a torch module (eager, TorchScript or torch.export's module)."""
    from targets.torch import TorchRunner

    return TorchRunner(module, inputs, threads)


def describe_targets() -> list[tuple[str, bool, str]]:
    """(name, available, reason) for every registered target."""
    rows = []
    for name in _modules():
        try:
            ok, why = get_target(name).availability()
        except TargetUnavailable as exc:
            ok, why = False, str(exc)
        rows.append((name, ok, why))
    return rows
