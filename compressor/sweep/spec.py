"""The sweep file: models (with their data), a target × precision grid, recipe variants, and
explicit jobs, read from TOML into frozen dataclasses; every mistake is a UsageError (exit 2)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from compressor.trust.strict_read import load_toml
from foundation.errors import UsageError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # use fullmatch: `$` lets a final newline in
SECTIONS = ("defaults", "models", "grid", "variants", "jobs")
TIMINGS = ("shared", "exclusive")  # --timing: as the jobs timed, or re-timed one at a time


@dataclass(frozen=True)
class ModelEntry:
    """One model and its data: `name` plus any recipe.toml keys (model, calib, eval, ...)."""

    name: str
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """A named recipe variant (any recipe.toml keys); every grid cell runs once per variant."""

    name: str
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobEntry:
    """An explicit job: a model by name, a target, a precision, an optional variant and id."""

    model: str
    target: str
    precision: str
    variant: str | None = None
    id: str | None = None
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file; relative paths in it are relative to `base` (the file's folder)."""

    path: Path
    base: Path
    defaults: dict = field(default_factory=dict)
    models: tuple[ModelEntry, ...] = ()
    targets: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = ()
    jobs: tuple[JobEntry, ...] = ()


def load_sweep(path: Path) -> SweepSpec:
    """Read and check a sweep file's structure (recipe keys are checked per job later)."""
    path = Path(path)
    where = f"Sweep file '{path}'"
    try:
        data = load_toml(path, where)
    except FileNotFoundError:
        raise UsageError(f"{where} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where} could not be read: {exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where} is not valid TOML: {exc}.") from None
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise UsageError(f"{where} has unknown sections {unknown}; known: {list(SECTIONS)}.")
    grid = _table(data.get("grid", {}), f"{where} [grid]")
    extra = sorted(set(grid) - {"targets", "precisions"})
    if extra:
        raise UsageError(f"{where} [grid] has unknown keys {extra}; use targets and precisions.")
    spec = SweepSpec(
        path=path,
        base=path.absolute().parent,
        defaults=_table(data.get("defaults", {}), f"{where} [defaults]"),
        models=tuple(_model(m, where) for m in _array(data, "models", where)),
        targets=_strings(grid.get("targets", []), f"{where} [grid] targets"),
        precisions=_strings(grid.get("precisions", []), f"{where} [grid] precisions"),
        variants=tuple(_variant(v, where) for v in _array(data, "variants", where)),
        jobs=tuple(_job(j, where) for j in _array(data, "jobs", where)),
    )
    _check_references(spec, where)
    return spec


def _table(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a table.")
    return value


def _array(data: dict, key: str, where: str) -> list[dict]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UsageError(f"{where}: '{key}' must be an array of tables ([[{key}]]).")
    return items


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f'{where} must be a list of names, e.g. ["onnx", "tflite"].')
    return tuple(value)


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise UsageError(
            f"{where}: name {value!r} must be letters, digits, '.', '_' or '-' (it becomes "
            "part of a folder name)."
        )
    return value


def _model(item: dict, where: str) -> ModelEntry:
    settings = dict(item)
    name = _name(settings.pop("name", None), f"{where} [[models]]")
    if not settings.get("model"):
        raise UsageError(f"{where}: model '{name}' needs a 'model' file.")
    return ModelEntry(name, settings)


def _variant(item: dict, where: str) -> Variant:
    settings = dict(item)
    return Variant(_name(settings.pop("name", None), f"{where} [[variants]]"), settings)


def _job(item: dict, where: str) -> JobEntry:
    settings = dict(item)
    fields = {key: settings.pop(key, None) for key in ("model", "target", "precision")}
    missing = [key for key, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        raise UsageError(f"{where}: every [[jobs]] entry needs {missing} (got {item}).")
    variant = settings.pop("variant", None)
    job_id = settings.pop("id", None)
    if job_id is not None:
        job_id = _name(job_id, f"{where} [[jobs]] id")
    return JobEntry(variant=variant, id=job_id, settings=settings, **fields)


def _check_references(spec: SweepSpec, where: str) -> None:
    """Unique names; jobs name known models and variants; something to run."""
    for kind, names in (
        ("model", [m.name for m in spec.models]),
        ("variant", [v.name for v in spec.variants]),
    ):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise UsageError(f"{where}: {kind} names must be unique; repeated: {dupes}.")
    models, variants = {m.name for m in spec.models}, {v.name for v in spec.variants}
    for job in spec.jobs:
        if job.model not in models:
            raise UsageError(f"{where}: job model '{job.model}' is not among {sorted(models)}.")
        if job.variant is not None and job.variant not in variants:
            raise UsageError(f"{where}: job variant '{job.variant}' is not in {sorted(variants)}.")
    if bool(spec.targets) != bool(spec.precisions):
        raise UsageError(f"{where}: [grid] needs both targets and precisions.")
    if not spec.models or not (spec.targets or spec.jobs):
        raise UsageError(
            f"{where} has no jobs: list [[models]] and a [grid] of targets and precisions, "
            "or explicit [[jobs]]."
        )
