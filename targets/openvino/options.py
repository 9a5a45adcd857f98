"""Settings of the OpenVINO target (-O KEY=VALUE)."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.errors import UsageError
from targets.base import TargetOptions

# OpenVINO's INFERENCE_PRECISION_HINT values this target accepts. f32 is the same arithmetic
# on every x86 CPU; bf16 is what OpenVINO picks by itself where the CPU has AVX512-BF16 or AMX
# (and silently f32 elsewhere), so it is opt-in only: its numbers depend on the host.
INFERENCE_PRECISIONS = ("f32", "bf16")


@dataclass(frozen=True)
class OpenVinoOptions(TargetOptions):
    """Settings of the OpenVINO target (`-O KEY=VALUE`)."""

    inference_precision: str = field(
        default="f32",
        metadata={
            "help": "Float arithmetic of the CPU plugin: f32 (same on every CPU) or bf16 "
            "(faster where the CPU has AVX512-BF16/AMX, f32 elsewhere: host-dependent)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inference_precision not in INFERENCE_PRECISIONS:
            raise UsageError(
                f"openvino option inference_precision='{self.inference_precision}' is not one "
                f"of {list(INFERENCE_PRECISIONS)}."
            )
