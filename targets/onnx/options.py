"""Settings of the ONNX Runtime target (-O KEY=VALUE)."""

from dataclasses import dataclass, field

from foundation.errors import UsageError
from targets.arithmetic import PROFILE_CHOICES, CpuProfile, resolve_profile
from targets.base import TargetOptions


@dataclass(frozen=True)
class OnnxOptions(TargetOptions):
    """Settings of the ONNX Runtime target (`-O KEY=VALUE`)."""

    activation_type: str = field(
        default="uint8",
        metadata={
            "help": "int8 activation type: uint8 (U8S8, fastest on x86) or int8 (S8S8, "
            "for ARM and other runtimes that prefer signed activations)."
        },
    )
    cpu: str = field(
        default="portable",
        metadata={
            "help": "CPU profile the int8 artifact must hold on: portable (every CPU: exact "
            "and AVX2 pair arithmetic), host (this machine's), x86-avx2, x86-vnni or arm64."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.activation_type not in ("uint8", "int8"):
            raise UsageError(
                f"activation_type must be uint8 or int8, not '{self.activation_type}'."
            )
        if self.cpu not in PROFILE_CHOICES:
            raise UsageError(
                f"onnx option cpu='{self.cpu}' is not a CPU profile; use one of "
                f"{', '.join(PROFILE_CHOICES)} (e.g. -O cpu=portable, the default)."
            )

    @property
    def profile(self) -> CpuProfile:
        """The CPU profile these options name (`host` resolved to this machine's)."""
        return resolve_profile(self.cpu)
