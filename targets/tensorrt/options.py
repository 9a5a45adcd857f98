"""Engine-build settings of the TensorRT target (-O KEY=VALUE)."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.errors import UsageError
from targets.base import TargetOptions


def _opt(default: object, help: str) -> object:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TensorRTOptions(TargetOptions):
    """Engine-build settings; the same values are written into build_engine.py."""

    workspace_mb: int = _opt(1024, "Builder workspace memory pool limit in MiB.")
    batch: tuple[int, ...] = _opt(
        (1, 1, 32),
        "Dynamic-batch optimization profile MIN,OPT,MAX (ignored for a fixed batch).",
    )
    timing_cache: str = _opt(
        "",
        "Timing-cache file to load and update, so rebuilds reuse kernel timings ('' = none).",
    )
    fp16_fallback: bool = _opt(
        True, "With --int8, let unquantized layers run in fp16 (TensorRT's usual int8 setup)."
    )
    build_check: bool = _opt(
        True, "Without a GPU, parse and build the ONNX with TensorRT-RTX on CPU as a check."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        low, opt, high = (list(self.batch) + [0, 0, 0])[:3]
        if len(self.batch) != 3 or not 1 <= low <= opt <= high:
            raise UsageError(
                f"tensorrt option batch={','.join(map(str, self.batch))} must be three "
                "numbers MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, e.g. -O batch=1,8,32."
            )
        if self.workspace_mb < 1:
            raise UsageError("tensorrt option workspace_mb must be at least 1 (MiB).")

    def settings(self, precision: str) -> dict:
        """The builder settings for a precision, as build_engine.py takes them."""
        return {
            "fp16": precision == "fp16" or (precision == "int8" and self.fp16_fallback),
            "int8": precision == "int8",
            "workspace_mb": self.workspace_mb,
            "batch": list(self.batch),
            "timing_cache": self.timing_cache,
        }
