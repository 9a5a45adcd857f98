"""What TensorRT tooling this machine has: real TensorRT, a CUDA GPU, TensorRT-RTX for checks."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from targets.tensorrt.build_engine import build_serialized


@dataclass(frozen=True)
class Toolchain:
    """The TensorRT modules and GPU found here, with the reason for each one that is missing."""

    tensorrt: ModuleType | None
    tensorrt_missing: str
    gpu: str | None
    rtx: ModuleType | None
    rtx_missing: str

    @property
    def can_build(self) -> bool:
        """Real engines need both TensorRT and a CUDA GPU."""
        return self.tensorrt is not None and self.gpu is not None

    def why_no_engine(self) -> str:
        """Plain words for why no engine can be built or run here."""
        missing = []
        if self.tensorrt is None:
            missing.append(f"TensorRT {self.tensorrt_missing}")
        if self.gpu is None:
            missing.append("no CUDA GPU is visible")
        return "; ".join(missing) or "nothing is missing"


def _import(name: str) -> tuple[ModuleType | None, str]:
    try:
        return importlib.import_module(name), ""
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None, "is not installed"
        return None, f"fails to import: {exc}"
    except (ImportError, OSError, RuntimeError) as exc:  # bindings without their libs
        return None, f"fails to import: {exc}"


def _cuda_device() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


@cache
def find_toolchain() -> Toolchain:
    """Probe once per process: importing TensorRT and initialising CUDA are not free."""
    trt, trt_missing = _import("tensorrt")
    rtx, rtx_missing = _import("tensorrt_rtx")
    return Toolchain(trt, trt_missing, _cuda_device(), rtx, rtx_missing)


def build_check(onnx_path: Path, settings: dict, rtx: ModuleType) -> dict:
    """Parse and build the ONNX with TensorRT-RTX on CPU: proof it is TensorRT-compatible."""
    started = time.perf_counter()
    # No timing cache: an RTX cache must not land in the file the device build will reuse.
    engine, info = build_serialized(rtx, onnx_path, {**settings, "timing_cache": ""})
    return {
        "tool": f"tensorrt-rtx {rtx.__version__}",
        **info,
        "engine_bytes": len(engine) if engine else 0,
        "seconds": round(time.perf_counter() - started, 3),
    }
