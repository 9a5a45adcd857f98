"""Find targets by name; their modules import lazily so a missing runtime hides only its target."""

from __future__ import annotations

import importlib
from pathlib import Path

from compressor.errors import TargetUnavailable, UsageError
from targets.base import Target

TARGET_MODULES: dict[str, str] = {
    "onnx": "targets.onnx",
    "tensorrt": "targets.tensorrt",
}


def target_names() -> list[str]:
    """Every registered target name, available here or not."""
    return list(TARGET_MODULES)


def get_target(name: str) -> Target:
    """The target called name; raises a UsageError listing the known ones for a bad name."""
    if name not in TARGET_MODULES:
        raise UsageError(f"Unknown target '{name}'; choose one of {target_names()}.")
    try:
        module = importlib.import_module(TARGET_MODULES[name])
    except ImportError as exc:
        raise TargetUnavailable(
            f"Target '{name}' cannot load on this machine: {exc}. "
            f"Install its extra: pip install -e '.[{name}]'."
        ) from exc
    return module.TARGET


def target_for_artifact(path: Path) -> Target:
    """The available target whose artifact suffix matches path (e.g. .onnx, .tflite, .engine)."""
    suffix = path.suffix.lower()
    for name in TARGET_MODULES:
        try:
            target = get_target(name)
        except TargetUnavailable:
            continue
        if target.capabilities.artifact_suffix == suffix:
            return target
    raise UsageError(
        f"No available target runs '{suffix}' files ('{path}'). Known artifacts: "
        f"{sorted(_suffixes())}; `compress targets` says what is missing on this machine."
    )


def _suffixes() -> set[str]:
    found = set()
    for name in TARGET_MODULES:
        try:
            found.add(get_target(name).capabilities.artifact_suffix)
        except TargetUnavailable:
            pass
    return found


def describe_targets() -> list[tuple[str, bool, str]]:
    """(name, available, reason) for every registered target."""
    rows = []
    for name in TARGET_MODULES:
        try:
            ok, why = get_target(name).availability()
        except TargetUnavailable as exc:
            ok, why = False, str(exc)
        rows.append((name, ok, why))
    return rows
