"""User-facing errors: each says what was wrong and how to fix it; the CLI prints them plainly."""


class CompressError(Exception):
    """Base of every error a user can cause; the CLI exits with `exit_code` and no traceback."""

    exit_code = 2


class UsageError(CompressError):
    """A flag, option or recipe combination that cannot work."""


class ModelLoadError(CompressError):
    """The model file is missing, truncated, corrupt or of an unsupported kind."""


class UnsafeModelError(ModelLoadError):
    """A model file that could run code when loaded: refused unless --trust-pickle is given."""


class DataError(CompressError):
    """Calibration, evaluation or training data is missing, empty, malformed or non-finite."""


class OutputError(CompressError):
    """The output location cannot be written."""


class ExportError(CompressError):
    """The model could not be converted to ONNX."""


class UnsupportedOp(CompressError):
    """A graph holds an operator the chosen target cannot lower."""


class TargetUnavailable(CompressError):
    """The target's runtime or toolchain is not installed on this machine."""
