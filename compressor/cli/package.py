"""`compress package`: a reproducible edge bundle of a compress output folder, or --check one."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from compressor.cli.common import CONSOLE, ERR, PATH, check_output, handle_errors
from compressor.trust.strict_read import load_json
from foundation.errors import UsageError


@click.command("package")
@click.argument("folder", required=False, type=PATH)
@click.option("--output", "-o", type=PATH, help="Bundle path [default: DIR.tar.gz beside DIR].")
@click.option(
    "--preprocess",
    multiple=True,
    metavar="KEY=VALUE|FILE.json",
    help="Preprocessing for the manifest (e.g. mean=[0.5] scale=1/255), or a JSON file of it.",
)
@click.option("--check", "check_path", type=PATH, help="Verify a bundle's hashes instead.")
@handle_errors
def package_command(
    folder: Path | None, output: Path | None, preprocess: tuple[str, ...], check_path: Path | None
) -> None:
    """Bundle a compress output DIR (model, report, manifest.json) reproducibly, or --check one."""
    from compressor.bundle.archive import write_bundle

    if (folder is None) == (check_path is None):
        raise UsageError(
            "Give either DIR to package (compress package out/ -o bundle.tar.gz) or "
            "--check BUNDLE to verify one."
        )
    if check_path is not None:
        _check(check_path)
        return
    folder_abs = folder.resolve()
    if not folder_abs.name:
        raise UsageError(f"Cannot package '{folder}' (the filesystem root); pass -o BUNDLE.")
    out = output or folder_abs.with_name(folder_abs.name + ".tar.gz")
    check_output(out, "--output", [folder / "report.json", folder / "recipe.toml"])
    manifest = write_bundle(folder, out, parse_preprocess(preprocess))
    model = manifest["model"]
    CONSOLE.print(
        f"wrote {out}: {model['file']} ({model['target']}, {model['precision']}) and "
        f"{len(manifest['files'])} files with sha256 in manifest.json"
    )


def _check(bundle: Path) -> None:
    """Verify a bundle's files against its manifest; exit 1 on any mismatch."""
    from compressor.bundle.archive import check_bundle

    result = check_bundle(bundle)
    for problem in result.problems:
        ERR.print(f"[red]mismatch[/]: {problem}", highlight=False)
    if not result.ok:
        what = "does not match its manifest" if result.manifest else "is not a valid bundle"
        ERR.print(f"[bold red]FAILED[/]: {bundle} {what}.")
        sys.exit(1)
    CONSOLE.print(f"[bold green]OK[/]: {result.files_checked} files match manifest.json")


def parse_preprocess(values: tuple[str, ...]) -> dict:
    """KEY=VALUE pairs (values parsed as JSON when they are, else kept as text) and JSON files."""
    spec: dict = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep:
            spec.update(_read_json_object(Path(value)))
            continue
        try:
            spec[key.strip()] = json.loads(raw, parse_constant=_reject_constant)
        except json.JSONDecodeError:
            spec[key.strip()] = raw.strip()
    for key, item in spec.items():
        check_preprocess_value(key, item)
    return spec


SCALARS = (str, int, float, bool, type(None))
MAX_TEXT = 1000  # a value is a word, a number or a short list, never a document
MAX_ITEMS = 64


def check_preprocess_value(key: object, value: object) -> None:
    """A manifest preprocessing entry: a short name, and a finite number, text, bool or null,
    or a flat list of numbers or text (e.g. mean=[0.485,0.456,0.406]). NaN and infinities are
    refused in every spelling ("nan", "-inf", "Infinity", 1e999)."""
    items = value if isinstance(value, list) and len(value) <= MAX_ITEMS else [value]
    named = isinstance(key, str) and 0 < len(key) <= 64 and key.isprintable()
    if not named or not all(_plain(item) for item in items):
        raise UsageError(
            f"--preprocess {str(key)[:64]!r}: {repr(value)[:80]} is not a finite number, text, "
            f"true/false/null or a flat list of up to {MAX_ITEMS} numbers or text (keys: short "
            "names). Give e.g. scale=0.00392156 or mean=[0.485,0.456,0.406]."
        )


def _plain(item: object) -> bool:
    if isinstance(item, float) or (isinstance(item, str) and len(item) <= MAX_TEXT):
        try:
            return math.isfinite(float(item))
        except ValueError:  # text that is not a number: a layout name, "1/255", ...
            return True
    return isinstance(item, SCALARS) and not isinstance(item, str)


def _reject_constant(name: str) -> float:
    raise UsageError(f"--preprocess values must be finite numbers, not {name}.")


def _read_json_object(path: Path) -> dict:
    try:
        data = load_json(path, f"--preprocess file '{path}'", parse_constant=_reject_constant)
    except FileNotFoundError:
        raise UsageError(f"--preprocess '{path}' is neither KEY=VALUE nor a JSON file.") from None
    except (OSError, ValueError) as exc:  # a folder, unreadable, bad JSON or not text
        raise UsageError(f"--preprocess file '{path}' is not valid JSON: {exc}") from exc
    return data
