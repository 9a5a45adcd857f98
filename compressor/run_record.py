"""Reading an earlier compress run: its report.json, recipe.toml, artifact files, target options.

A record was written by a run nobody watched and may have been edited since: every file name
read from it passes `is_plain_name` before a path is built from it, and every figure a check
compares is checked to be a number.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compressor.report_model import Report
from foundation.errors import UsageError
from targets.base import Target

REPORT = "report.json"
RECIPE = "recipe.toml"


@dataclass(frozen=True)
class RunRecord:
    """What a run left in its folder: report.json and recipe.toml as read ({} / None when absent
    or unreadable)."""

    folder: Path
    report: dict
    recipe: dict | None

    @property
    def artifact_name(self) -> str | None:
        """The artifact's file name as the report gives it, when that is a plain name."""
        name = self.report.get("artifact")
        return name if is_plain_name(name) else None

    def artifact_file(self) -> Path | None:
        """The artifact the report names, when it is in the folder (a file, or a folder artifact)."""
        name = self.artifact_name
        return self.folder / name if name and (self.folder / name).exists() else None

    def output_names(self) -> list[object] | None:
        """The names of the files the run wrote beside its report (artifact first), unchecked;
        None when the report names no artifact or its extra_files is not a list."""
        extra = self.report.get("extra_files", [])
        if "artifact" not in self.report or not isinstance(extra, list):
            return None
        return [self.report["artifact"], *extra]

    def output_files(self) -> list[Path]:
        """The artifact and extra files the report names that are plain names in the folder."""
        names = self.output_names() or []
        return [self.folder / n for n in names if is_plain_name(n) and (self.folder / n).exists()]

    def target_options(self, target: Target) -> dict:
        """The -O options of the run for target: recipe.toml's [target_options], else the
        scalars in the report's artifact_info named like the target's options."""
        if target.options_type is None:
            return {}
        saved = self.recipe or {}
        if saved.get("target") == target.name and isinstance(saved.get("target_options"), dict):
            return dict(saved["target_options"])
        info = self.report.get("artifact_info")
        if not isinstance(info, dict):  # an edited or foreign report: use the defaults
            return {}
        fields = {f.name for f in dataclasses.fields(target.options_type)}
        scalar = (str, bool, int, float)
        return {k: v for k, v in info.items() if k in fields and isinstance(v, scalar)}

    def typed_report(self) -> Report | None:
        """The report as a typed Report, or None when it is not report.json's form."""
        try:
            return Report.from_json_dict(self.report)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def is_plain_name(name: object) -> bool:
    """A file name read from a record stays inside its folder: no paths, '.', '..' or hidden."""
    return (
        isinstance(name, str)
        and bool(name)
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
        and Path(name).name == name
    )


def read_run(folder: Path) -> RunRecord:
    """The record in folder; a missing or unreadable report.json reads as {}, recipe as None."""
    report = _read_report(folder / REPORT)
    try:
        recipe = tomllib.loads((folder / RECIPE).read_text())
    except (OSError, ValueError):  # absent, unreadable or not TOML
        recipe = None
    return RunRecord(folder, report, recipe)


def load_run(folder: Path) -> RunRecord:
    """The record in folder; report.json and recipe.toml that exist must parse (UsageError)."""
    report, recipe = {}, None
    if (folder / REPORT).exists():
        report = _parse(folder / REPORT, json.loads, "JSON")
        if not isinstance(report, dict):
            raise UsageError(f"'{folder / REPORT}' is not a compress report; re-run compress.")
        _check_text_fields(report, folder / REPORT)
    if (folder / RECIPE).exists():
        recipe = _parse(folder / RECIPE, tomllib.loads, "TOML")
    return RunRecord(folder, report, recipe)


# Fields a manifest copies from the report as text: an edited report must not smuggle in others.
TEXT_FIELDS = ("target", "precision", "artifact")


def _check_text_fields(report: dict, path: Path) -> None:
    for key in TEXT_FIELDS:
        if key in report and not isinstance(report[key], str | None):
            raise UsageError(
                f"'{path}' has {key} = {report[key]!r}, not text: it was edited or is not a "
                "compress report. Re-run compress."
            )


def artifact_record(path: Path) -> RunRecord | None:
    """The record of the run that wrote this artifact file (its report names it), else None."""
    record = read_run(path.parent)
    return record if record.report.get("artifact") == path.name else None


def sibling_report(path: Path) -> dict:
    """The report.json a compress run wrote beside this artifact, or {} when there is none."""
    record = artifact_record(path)
    return record.report if record is not None else {}


MANIFEST = "manifest.json"


def recorded_int8_arithmetic(path: Path) -> dict | None:
    """The int8_arithmetic record (CPU profile verified, the measuring host) of the run that
    made this artifact: its report.json, else a bundle's manifest.json beside it that names
    it; None when neither records one (an older run, or not int8) or it is not a table."""
    found = sibling_report(path).get("int8_arithmetic")
    if found is None:
        manifest = _read_report(path.parent / MANIFEST)
        model = manifest.get("model")
        if isinstance(model, dict) and model.get("file") == path.name:
            found = manifest.get("int8_arithmetic")
    if not isinstance(found, dict) or not isinstance(found.get("host", {}), dict):
        return None
    return found


def _read_report(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, unreadable or not JSON
        return {}
    return data if isinstance(data, dict) else {}


def _parse(path: Path, loads: Callable[[str], object], kind: str) -> object:
    try:
        return loads(path.read_text())
    except (OSError, ValueError) as exc:  # unreadable, not text, bad JSON or TOML
        raise UsageError(f"'{path}' is not valid {kind} ({exc}); re-run compress.") from exc


def load_stored_report(path: Path) -> dict:
    """A report.json given to verify --against (compress's, or verify --json's), its figures
    checked to be numbers; as JSON, since older schemas and verify reports lack sections."""
    try:
        stored = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"--against '{path}' does not exist; point it at a report.json.") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not text at all
        raise UsageError(f"--against '{path}' is not valid JSON: {exc}") from exc
    if not isinstance(stored, dict) or "compressed" not in stored:
        raise UsageError(
            f"--against '{path}' is not a compress report (no 'compressed' section); "
            "pass the report.json a compress run wrote."
        )
    check_stored_figures(stored, str(path))
    return stored


STORED_FIGURES = (
    ("compressed", "accuracy", None),
    ("compressed", "size_bytes", None),
    ("compressed", "latency_ms", "p50"),
    ("baseline", "latency_ms", "p50"),
)


def check_stored_figures(stored: dict, source: str) -> None:
    """The figures a regression check reads must be numbers or null, not text or tables."""
    for section, key, sub in STORED_FIGURES:
        value = stored.get(section) or {}
        value = value.get(key) if isinstance(value, dict) else value
        if sub and isinstance(value, dict):
            value = value.get(sub)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            where = ".".join(p for p in (section, key, sub) if p)
            raise UsageError(
                f"--against '{source}': '{where}' is {value!r}, not a number; the file was edited "
                "or is not a compress report. Pass the report.json a compress run wrote."
            )
