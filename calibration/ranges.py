"""Calibration range methods, one explicit table mapped onto onnxruntime's calibrators."""

from __future__ import annotations

from onnxruntime.quantization import CalibrationMethod

from compressor.errors import UsageError

RANGE_METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


def calibration_method(name: str) -> CalibrationMethod:
    """The onnxruntime calibrator for a range-method name."""
    try:
        return RANGE_METHODS[name]
    except KeyError:
        raise UsageError(
            f"Unknown calibration method '{name}'; choose one of {sorted(RANGE_METHODS)}."
        ) from None
