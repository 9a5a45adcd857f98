"""Expand a sweep file into jobs: one ordinary compress Recipe each, output in DIR/<job-id>/."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from compressor.pipeline.precision import PRECISION_STEPS
from compressor.recipe import Recipe, recipe_from_dict
from compressor.sweep.folder import job_folder
from compressor.sweep.spec import JobEntry, SweepSpec, Variant
from foundation.errors import TargetUnavailable, UsageError
from targets.registry import describe_targets, get_target, target_names

MERGED_TABLES = ("budget", "prune", "distill", "target_options", "input_shapes", "batch_axes")
AVAILABLE = "available"  # grid word: every target whose runtime works on this machine


@dataclass(frozen=True)
class Job:
    """One compress run of a sweep: its id (the output folder's name) and its recipe."""

    id: str
    model: str
    target: str
    precision: str
    variant: str | None
    recipe: Recipe


def expand_jobs(spec: SweepSpec, out_dir: Path) -> tuple[list[Job], list[str]]:
    """Grid cells (models × targets × precisions × variants) then explicit jobs; also the
    grid cells skipped because the target does not support the precision, with why."""
    entries, skipped = _grid_entries(spec)
    entries += list(spec.jobs)
    variants = {v.name: v for v in spec.variants}
    jobs = [_make_job(spec, entry, variants, out_dir) for entry in entries]
    ids = [job.id.lower() for job in jobs]  # case-blind: DIR may be on such a filesystem
    dupes = sorted({job.id for job in jobs if ids.count(job.id.lower()) > 1})
    if dupes:
        raise UsageError(
            f"Sweep file '{spec.path}' makes the same job twice: {dupes}. Give explicit jobs "
            "an `id` or a variant."
        )
    return jobs, skipped


def _grid_entries(spec: SweepSpec) -> tuple[list[JobEntry], list[str]]:
    targets = _grid_targets(spec.targets)
    entries, skipped = [], []
    variants: list[Variant | None] = list(spec.variants) or [None]
    for model in spec.models:
        for target in targets:
            supported = _precisions(target)
            for precision in spec.precisions:
                if supported is not None and precision not in supported:
                    skipped.append(
                        f"{model.name} {target} {precision}: {target} supports {supported}"
                    )
                    continue
                for variant in variants:
                    name = variant.name if variant else None
                    entries.append(JobEntry(model.name, target, precision, name))
    return entries, skipped


def _grid_targets(names: tuple[str, ...]) -> list[str]:
    """Grid target names, with `available` standing for the targets that work here."""
    found: list[str] = []
    for name in names:
        expanded = [n for n, ok, _ in describe_targets() if ok] if name == AVAILABLE else [name]
        found += [n for n in expanded if n not in found]
    return found


def _precisions(target: str) -> list[str] | None:
    """The target's declared precisions; None when its runtime is not installed here (the
    cluster may have it, so the job runs and says so if it cannot)."""
    try:
        return list(get_target(target).capabilities.precisions)
    except TargetUnavailable:
        return None


def _make_job(spec: SweepSpec, entry: JobEntry, variants: dict, out_dir: Path) -> Job:
    model = next(m for m in spec.models if m.name == entry.model)
    variant = variants[entry.variant] if entry.variant else None
    _check_names(spec, entry)  # they become the job's id, so its folder and file names
    job_id = entry.id or "-".join(
        p for p in (entry.model, entry.target, entry.precision, entry.variant) if p
    )
    layers = [spec.defaults, model.settings, variant.settings if variant else {}, entry.settings]
    if any("output" in layer for layer in layers):
        raise UsageError(
            f"Sweep file '{spec.path}': 'output' is set by the sweep (-o DIR/<job-id>/); remove it."
        )
    merged = merge_settings(layers) | {"target": entry.target, "precision": entry.precision}
    recipe = recipe_from_dict(merged, f"Sweep file '{spec.path}', job '{job_id}'")
    recipe = replace(recipe.with_absolute_paths(spec.base), output=str(job_folder(out_dir, job_id)))
    return Job(job_id, entry.model, entry.target, entry.precision, entry.variant, recipe)


def _check_names(spec: SweepSpec, entry: JobEntry) -> None:
    """A job's target and precision are registry names, not paths a file chose."""
    if entry.target not in target_names():
        raise UsageError(
            f"Sweep file '{spec.path}': target {entry.target!r} is not one of {target_names()}."
        )
    if entry.precision not in PRECISION_STEPS:
        raise UsageError(
            f"Sweep file '{spec.path}': precision {entry.precision!r} is not one of "
            f"{list(PRECISION_STEPS)}."
        )


def merge_settings(layers: list[dict]) -> dict:
    """Later layers win; nested tables (budget, prune, ...) merge key by key."""
    merged: dict = {}
    for layer in layers:
        for key, value in layer.items():
            if key in MERGED_TABLES and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return merged
