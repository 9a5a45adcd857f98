"""The `compress` command line: `compress MODEL [options]` plus one module per subcommand."""

from __future__ import annotations

import click

from compressor import __version__
from compressor.cli.bench import bench_command
from compressor.cli.compress import run_command
from compressor.cli.debug import debug_command
from compressor.cli.example import example_command
from compressor.cli.package import package_command
from compressor.cli.sweep import sweep_command
from compressor.cli.targets import targets_command
from compressor.cli.verify import verify_command


class DefaultGroup(click.Group):
    """A group whose first argument may be a model path: then the `run` command is implied."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compress")
def main() -> None:
    """Compress a trained model and ship it to a device.

    \b
    compress MODEL --target onnx --int8 --calib calib.npz --eval eval.npz -o out/
    compress example            train a digits CNN and compress it (no downloads)
    compress targets            list targets and whether they work on this machine
    compress bench ARTIFACT     latency of any artifact in its runtime
    compress verify ARTIFACT --baseline MODEL --eval DATA    CI budget check (JUnit)
    compress package DIR -o bundle.tar.gz                     reproducible edge bundle
    compress sweep SWEEP.toml -o DIR    many models × targets × recipes, here or on Ray
    compress debug MODEL --calib DATA   which layers int8 breaks, and the fix

    Exit codes: 0 all budgets met, 1 a budget failed, 2 bad usage or bad input,
    3 an internal error (a bug; rerun with COMPRESS_DEBUG=1 for the traceback).
    """


for command in (
    run_command,
    example_command,
    targets_command,
    bench_command,
    verify_command,
    package_command,
    debug_command,
    sweep_command,
):
    main.add_command(command)
