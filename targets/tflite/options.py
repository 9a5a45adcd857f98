"""The tflite target's -O options: resolver names and precision-dependent checks (booleans are
parsed strictly by TargetOptions, like every target's)."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.errors import UsageError
from targets.base import TargetOptions

RESOLVERS = ("default", "builtin")
LSTM_FORMS = ("auto", "unrolled")


@dataclass(frozen=True)
class TfliteOptions(TargetOptions):
    """Settings of the tflite target (pass as -O KEY=VALUE)."""

    nhwc_io: bool = field(
        default=False,
        metadata={
            "help": "4-D inputs/outputs of the file in NHWC (no TRANSPOSE at the edges); "
            "the runner still takes the model's NCHW data."
        },
    )
    int8_io: bool = field(
        default=False,
        metadata={
            "help": "int8 inputs/outputs in --int8 mode (no QUANTIZE/DEQUANTIZE at the edges)."
        },
    )
    lstm: str = field(
        default="auto",
        metadata={
            "help": "LSTM form: auto (UNIDIRECTIONAL_SEQUENCE_LSTM for a zero initial state, "
            "unrolled steps otherwise) or unrolled (always; 1.7-2.1x faster on XNNPACK for "
            "short sequences, slower on the builtin kernels)."
        },
    )
    resolver: str = field(
        default="default",
        metadata={"help": "Kernels used for verification: default (XNNPACK) or builtin."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lstm not in LSTM_FORMS:
            raise UsageError(f"tflite option lstm='{self.lstm}' is not one of {list(LSTM_FORMS)}.")
        if self.resolver not in RESOLVERS:
            raise UsageError(
                f"tflite option resolver='{self.resolver}' is not one of {list(RESOLVERS)}."
            )

    def validate(self, precision: str) -> None:
        """Reject options that do not apply to this precision (int8_io needs --int8)."""
        if self.int8_io and precision != "int8":
            raise UsageError(
                f"tflite option int8_io=true only applies to --int8 (full-integer) models, "
                f"not to {precision}; drop -O int8_io=true or pass --int8 --calib DATA."
            )
