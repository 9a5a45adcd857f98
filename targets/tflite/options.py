"""The tflite target's -O options: strict booleans, resolver names, precision-dependent checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from compressor.errors import UsageError

RESOLVERS = ("default", "builtin")
# Spellings a boolean option accepts (case-insensitive); anything else is a usage error.
BOOL_WORDS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


@dataclass(frozen=True)
class TfliteOptions:
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
    resolver: str = field(
        default="default",
        metadata={"help": "Kernels used for verification: default (XNNPACK) or builtin."},
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.type in ("bool", bool):
                object.__setattr__(self, f.name, parse_bool(f.name, getattr(self, f.name)))
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


def parse_bool(name: str, value: object) -> bool:
    """A boolean option from a bool or one of BOOL_WORDS; other values are usage errors."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in BOOL_WORDS:
        raise UsageError(
            f"tflite option {name}='{value}' is not a boolean; use one of {', '.join(BOOL_WORDS)}."
        )
    return BOOL_WORDS[word]


def strict_bool_values(raw: dict) -> dict:
    """raw -O values with boolean fields already parsed strictly (base._coerce maps any
    unknown word to False, so the check has to happen before it)."""
    bools = {f.name for f in dataclasses.fields(TfliteOptions) if f.type in ("bool", bool)}
    return {
        key: parse_bool(key, value) if key.replace("-", "_") in bools else value
        for key, value in raw.items()
    }
