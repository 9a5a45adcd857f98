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


# What one `compress` run of a test's tiny model may take before a test calls it hung: a run
# takes seconds on a quiet machine and ten times that on a busy one, so only a hang reaches
# this. Tests bound their subprocesses by the work they start, never by how fast it must go.
RUN_CEILING_S = 600


def work_bound_s(runs: int = 1) -> int:
    """The hang guard for a subprocess doing `runs` compress runs (or Ray starts): seconds."""
    return runs * RUN_CEILING_S
