"""JSON that every parser accepts: NaN and Infinity become null (RFC 8259 has no such literals)."""

from __future__ import annotations

import json
import math


def finite_or_none(value: object) -> object:
    """The value with every non-finite float, at any depth, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def dumps(value: object, **kwargs: object) -> str:
    """json.dumps that never writes NaN/Infinity literals (Python's default does)."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)
