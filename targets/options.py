"""The base of every target's -O options and the one parser of their string values."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from foundation.errors import UsageError

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


def parse_bool(name: str, value: object) -> bool:
    """A boolean option from a bool or one of BOOL_WORDS; other values are usage errors."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in BOOL_WORDS:
        raise UsageError(
            f"Target option {name}='{value}' is not a boolean; use one of {', '.join(BOOL_WORDS)}."
        )
    return BOOL_WORDS[word]


@dataclass(frozen=True)
class TargetOptions:
    """Base of every target's -O options: boolean fields parsed strictly, a per-precision check.

    Subclasses are frozen dataclasses whose fields carry metadata["help"]; a subclass with its
    own __post_init__ calls super().__post_init__() first.
    """

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.type in ("bool", bool):
                object.__setattr__(self, f.name, parse_bool(f.name, getattr(self, f.name)))

    def validate(self, precision: str) -> None:
        """Reject options that do not apply to this precision; nothing by default."""


def coerce_option(value: object, fld: dataclasses.Field) -> object:
    """Turn a CLI string into the field's declared type (int, float, str, tuple[int]); booleans
    are parsed by TargetOptions itself."""
    kind = str(fld.type)
    if not isinstance(value, str) or "bool" in kind:
        return value
    try:
        if "tuple" in kind:
            return tuple(int(v) for v in value.split(","))
        if "int" in kind:
            return int(value)
        if "float" in kind:
            return float(value)
    except ValueError:
        raise UsageError(f"Target option '{fld.name}': '{value}' is not a valid {kind}.") from None
    return value
