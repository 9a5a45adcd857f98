"""Reading an earlier compress run: its report.json, recipe.toml, artifact files, target options.

A record was written by a run nobody watched and may have been edited since: every file name
read from it passes `is_plain_name` before a path is built from it, and every figure a check
compares is checked to be a number.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compressor.report.schema import Report
from compressor.trust.strict_read import load_json, load_toml
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


def load_logged_run(folder: Path) -> tuple[RunRecord, list[Path]]:
    """The record in folder and its files to copy elsewhere (MLflow): report.json, recipe.toml
    and the outputs the report names. A UsageError, before anything is read, when one is or
    holds a symbolic link (whose target may be anyone's file, e.g. a planted secret); and when a
    name is not plain."""
    _refuse_links(folder, [folder / REPORT, folder / RECIPE])
    record = load_run(folder)
    names = record.output_names() or []
    for name in names:
        if not is_plain_name(name):
            raise UsageError(
                f"'{folder / REPORT}' names the output {name!r}, which is not a plain file name "
                "inside its folder (the report was edited); nothing was logged."
            )
    outputs = [folder / n for n in names]
    _refuse_links(folder, outputs)
    return record, [p for p in (folder / REPORT, folder / RECIPE, *outputs) if p.exists()]


def _refuse_links(folder: Path, paths: list[Path]) -> None:
    for path in paths:
        link = path if path.is_symlink() else first_link(path)
        if link is not None:
            raise UsageError(
                f"'{link}' is a symbolic link in the run folder '{folder}'; a run's files are "
                "read back and logged only when they are real files in it. Nothing was logged."
            )


def first_link(root: Path) -> Path | None:
    """The first symbolic link below a folder (root itself aside), without following any."""
    if not root.is_dir():
        return None
    for folder, dirs, files in os.walk(root):  # os.walk does not descend into linked folders
        for name in sorted(dirs + files):
            if (Path(folder) / name).is_symlink():
                return Path(folder) / name
    return None


def read_run(folder: Path) -> RunRecord:
    """The record in folder; a missing or unreadable report.json reads as {}, recipe as None."""
    report = _read_report(folder / REPORT)
    try:
        recipe = load_toml(folder / RECIPE, f"'{folder / RECIPE}'")
    except (OSError, ValueError):  # absent, unreadable or not TOML
        recipe = None
    return RunRecord(folder, report, recipe)


def load_run(folder: Path) -> RunRecord:
    """The record in folder; report.json and recipe.toml that exist must parse (UsageError)."""
    report, recipe = {}, None
    if (folder / REPORT).exists():
        report = _parse(folder / REPORT, _load_any_json, "JSON")
        if not isinstance(report, dict):
            raise UsageError(f"'{folder / REPORT}' is not a compress report; re-run compress.")
        _check_text_fields(report, folder / REPORT)
        _check_shape(report, RUN_SHAPE, "", f"'{folder / REPORT}'", "Re-run compress.")
    if (folder / RECIPE).exists():
        recipe = _parse(folder / RECIPE, load_toml, "TOML")
        _check_shape(recipe, RECIPE_SHAPE, "", f"'{folder / RECIPE}'", "Re-run compress.")
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
        data = _load_any_json(path, f"'{path}'")
    except (OSError, ValueError):  # absent, unreadable or not JSON (too deep or big: UsageError)
        return {}
    return data if isinstance(data, dict) else {}


def _load_any_json(path: Path, what: str) -> object:
    return load_json(path, what, expect=None)


def _parse(path: Path, load: Callable[[Path, str], object], kind: str) -> object:
    try:
        return load(path, f"'{path}'")
    except (OSError, ValueError) as exc:  # unreadable, not text, bad JSON or TOML
        raise UsageError(f"'{path}' is not valid {kind} ({exc}); re-run compress.") from exc


def load_stored_report(path: Path) -> dict:
    """A report.json given to verify --against (compress's, or verify --json's), its figures
    checked to be numbers; as JSON, since older schemas and verify reports lack sections."""
    try:
        stored = load_json(path, f"--against '{path}'")
    except FileNotFoundError:
        raise UsageError(f"--against '{path}' does not exist; point it at a report.json.") from None
    except (OSError, ValueError) as exc:  # a folder, unreadable, not JSON, or not text at all
        raise UsageError(f"--against '{path}' is not valid JSON: {exc}") from exc
    if not isinstance(stored.get("compressed"), dict):
        raise UsageError(
            f"--against '{path}' is not a compress report (no 'compressed' section); "
            "pass the report.json a compress run wrote."
        )
    check_stored_figures(stored, str(path))
    return stored


def _number(low: float) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return math.isfinite(value) and value >= low

    return check


def _of(*types: type) -> Callable[[object], bool]:
    return lambda value: (
        isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    )


# What a regression check reads from a stored report, by key path: each value null/absent or of
# this form. A p50 must not be negative (a stored -1 made any slowdown pass as a speed-up; 0
# reads as unusable).
STORED_SHAPE: dict[tuple[str, ...], tuple[Callable[[object], bool], str]] = {
    ("compressed",): (_of(dict), "a table"),
    ("compressed", "accuracy"): (_number(-math.inf), "a number"),
    ("compressed", "size_bytes"): (_number(0), "a number >= 0"),
    ("compressed", "eval_samples"): (_number(0), "a number >= 0"),
    ("compressed", "runtime"): (_of(str), "text"),
    ("compressed", "outputs"): (_of(list), "a list"),
    ("compressed", "latency_ms"): (_of(dict), "a table"),
    ("compressed", "latency_ms", "p50"): (_number(0), "a number >= 0"),
    ("compressed", "latency_ms", "threads"): (_number(1), "a number >= 1"),
    ("baseline",): (_of(dict), "a table"),
    ("baseline", "runtime"): (_of(str), "text"),
    ("baseline", "latency_ms"): (_of(dict), "a table"),
    ("baseline", "latency_ms", "p50"): (_number(0), "a number >= 0"),
    ("target",): (_of(str), "text"),
    ("schema_version",): (_of(int), "an integer"),
}
# Each of compressed.outputs: a table whose name is text; the rest null/absent or of this form.
OUTPUT_SHAPE: dict[tuple[str, ...], tuple[Callable[[object], bool], str]] = {
    ("shape",): (_of(list), "a list"),
    ("fidelity",): (_of(dict), "a table"),
    ("fidelity", "sqnr_mean_db"): (_number(-math.inf), "a number"),
    ("headline",): (_of(str), "text"),
    ("headline_value",): (_number(-math.inf), "a number"),
    ("higher_is_better",): (_of(bool), "true or false"),
}


def check_stored_figures(stored: dict, source: str) -> None:
    """Every value a regression check reads is of the form it needs (numbers in range, tables,
    lists, text) or null, so a hand-edited report is refused, never half-compared."""
    label, fix = f"--against '{source}'", AGAINST_FIX
    _check_shape(stored, STORED_SHAPE, "", label, fix)
    for index, output in enumerate((stored.get("compressed") or {}).get("outputs") or []):
        where = f"compressed.outputs[{index}]"
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            _refuse(label, where, output, "a table with a text 'name'", fix)
        _check_shape(output, OUTPUT_SHAPE, where + ".", label, fix)


AGAINST_FIX = "Pass the report.json a compress run (or verify --json) wrote."
_TABLE, _LIST, _TEXT = (_of(dict), "a table"), (_of(list), "a list"), (_of(str), "text")
# What `compress package` (the manifest) and tracking read from a run folder's report.json.
RUN_SHAPE: dict[tuple[str, ...], tuple[Callable[[object], bool], str]] = {
    **{(section,): _TABLE for section in ("baseline", "compressed", "fp32_reference")},
    **{(section,): _TABLE for section in ("environment", "artifact_info", "passes")},
    **{(key,): _LIST for key in ("budgets", "notes", "extra_files")},
    ("compressed", "runtime"): _TEXT,
    ("compressed", "proxy_for"): _TEXT,
    ("passed",): (_of(bool), "true or false"),
}
# What the manifest reads from a run folder's recipe.toml.
RECIPE_SHAPE = {("target",): _TEXT, ("preprocess",): _TEXT, ("target_options",): _TABLE}


def _check_shape(data: dict, shape: dict, prefix: str, label: str, fix: str) -> None:
    for path, (allowed, form) in shape.items():  # parents come before their children
        value = data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not allowed(value):
            _refuse(label, prefix + ".".join(path), value, form, fix)


def _refuse(label: str, where: str, value: object, form: str, fix: str) -> None:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise UsageError(
        f"{label}: '{where}' is {shown}, not {form}; the file was edited or is not a compress "
        f"report. {fix}"
    )
