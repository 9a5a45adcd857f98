"""Settings of the ONNX Runtime target (-O KEY=VALUE)."""

from dataclasses import dataclass, field

from foundation.errors import UsageError
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.activation_type not in ("uint8", "int8"):
            raise UsageError(
                f"activation_type must be uint8 or int8, not '{self.activation_type}'."
            )
