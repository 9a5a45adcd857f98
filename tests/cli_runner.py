"""Invoke `compress ARGS` in-process, the one way every CLI test does it."""

from __future__ import annotations

from collections.abc import Sequence

from click.testing import CliRunner, Result

from compressor.cli import main


def invoke_cli(args: Sequence[object], code: int | None = None) -> Result:
    """Run `compress ARGS` (paths and numbers are turned into text); unexpected exceptions
    surface as test errors. With `code`, assert the exit code and show the output when it differs."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, result.output[-3000:]
    return result
