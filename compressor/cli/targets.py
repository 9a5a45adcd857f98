"""`compress targets`: which targets work on this machine (and why not), and their options."""

from __future__ import annotations

import dataclasses

import click
from rich.markup import escape
from rich.table import Table

from compressor.cli.common import CONSOLE


@click.command("targets")
@click.option("--options", "show_options", is_flag=True, help="Also list each target's options.")
def targets_command(show_options: bool) -> None:
    """List targets and whether they work on this machine (and why not)."""
    from targets.registry import describe_targets, get_target

    table = Table("target", "available", "precisions", "details")
    for name, ok, why in describe_targets():
        precisions, details = "", why
        if ok:
            caps = get_target(name).capabilities
            precisions = ", ".join(caps.precisions)
            details = "; ".join([why, *caps.notes])
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", precisions, escape(details))
    CONSOLE.print(table)
    if show_options:
        for name, ok, _ in describe_targets():
            options_type = get_target(name).options_type if ok else None
            if options_type is None:
                continue
            opts = Table("option (-O KEY=VALUE)", "default", "meaning", title=f"{name} options")
            for f in dataclasses.fields(options_type):
                opts.add_row(f.name, repr(f.default), f.metadata.get("help", ""))
            CONSOLE.print(opts)
