"""Run every zoo model × available target × precision as one sweep; write the tables.

The suites are sweep files (benchmarks/sweeps/*.toml) run by `compress sweep`'s own code: this
script trains the zoo models they name, runs the sweep here one job at a time (no two jobs share
cores while timing), and turns each job's report.json into a table row.

python -m benchmarks.run [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime
import torch

from benchmarks.tables import summarize_report, write_results
from benchmarks.zoo import save_zoo_inputs
from compressor import __version__
from compressor.progress import STDERR
from compressor.recipe import Recipe
from compressor.sweep.run import SweepSettings, run_sweep
from compressor.sweep.spec import SweepSpec, load_sweep
from compressor.sweep.worker import run_job
from targets.registry import describe_targets

SWEEPS = Path(__file__).parent / "sweeps"


@dataclass(frozen=True)
class SuiteConfig:
    """A suite: its sweep file (models, targets, precisions, timing) and training epochs."""

    name: str
    sweep: Path
    epochs: dict[str, int] = field(default_factory=dict)  # empty: the zoo's defaults

    @property
    def spec(self) -> SweepSpec:
        return load_sweep(self.sweep)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.spec.models)

    @property
    def runs(self) -> int:
        return self.spec.defaults.get("runs", Recipe.runs)

    @property
    def warmup(self) -> int:
        return self.spec.defaults.get("warmup", Recipe.warmup)

    @property
    def threads(self) -> int:
        return self.spec.defaults.get("threads", Recipe.threads)

    def to_dict(self) -> dict:
        """What the results files record about the suite."""
        spec = self.spec
        return {
            "name": self.name,
            "sweep": str(self.sweep.relative_to(SWEEPS.parent.parent)),
            "models": list(self.models),
            "targets": list(spec.targets),
            "precisions": list(spec.precisions),
            "epochs": self.epochs,
            "runs": self.runs,
            "warmup": self.warmup,
            "threads": self.threads,
        }


SUITES = {
    "full": SuiteConfig("full", SWEEPS / "full.toml"),
    "quick": SuiteConfig("quick", SWEEPS / "quick.toml", epochs={"lenet": 10, "lstm": 15}),
}


def prepare_model(name: str, epochs: int | None, folder: Path) -> tuple[dict[str, Path], float]:
    """Train (cached per process), export with a dynamic batch and save model.pt2 + data."""
    started = time.perf_counter()
    paths = save_zoo_inputs(name, folder, epochs)
    return paths, time.perf_counter() - started


def run_one(
    model: str, target: str, precision: str, paths: dict[str, Path], config: SuiteConfig, work: Path
) -> dict:
    """One job outside a sweep file, through the sweep's job runner, as a table row."""
    recipe = Recipe(
        model=str(paths["model"]),
        target=target,
        precision=precision,
        calib=str(paths["calib"]),
        eval=str(paths["eval"]),
        output=str(work / model / f"{target}-{precision}"),
        runs=config.runs,
        warmup=config.warmup,
        threads=config.threads,
    )
    outcome = run_job(f"{model}-{target}-{precision}", recipe)
    return table_row(model, target, precision, outcome.status, outcome.error, Path(recipe.output))


def table_row(
    model: str, target: str, precision: str, status: str, error: str | None, folder: Path
) -> dict:
    """A job's row: its report's figures, or why it did not run (a limit the target declares is
    `unsupported`, anything else `failed`), so one combination never loses the others."""
    row = {"model": model, "target": target, "precision": precision}
    if status in ("passed", "failed"):  # the run finished and wrote its report
        report = json.loads((folder / "report.json").read_text())
        return {**row, "status": "ok", **summarize_report(report)}
    kind, _, message = (error or status).partition(": ")
    if kind == "UnsupportedOp":
        return {**row, "status": "unsupported", "error": message}
    STDERR.print(f"[red]failed[/] {model} {target} {precision}: {error}")
    return {**row, "status": "failed", "error": error or status}


def run_suite(config: SuiteConfig, work: Path) -> tuple[list[dict], dict[str, float]]:
    """Train the suite's models into work/, run its sweep file there; rows and training time."""
    train_s = {}
    for model in config.models:
        STDERR.print(f"[bold]benchmark[/] {model}: training and export")
        _, train_s[model] = prepare_model(model, config.epochs.get(model), work / model)
    shutil.copy(config.sweep, work / "sweep.toml")  # its model paths are relative to work/
    settings = SweepSettings(work / "sweep.toml", work / "out", workers=1)
    summary = run_sweep(settings, STDERR)
    rows = [
        table_row(
            r["model"], r["target"], r["precision"], r["status"], r["error"], work / "out" / r["id"]
        )
        for r in summary["rows"]
    ]
    return rows, train_s


def environment() -> dict:
    """Versions and machine the numbers were measured on."""
    import os

    return {
        "compressor": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "targets": [name for name, ok, _ in describe_targets() if ok],
    }


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run the suite in a temporary folder, write latest.md/.json (and .png)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="A few-minute subset.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    config = SUITES["quick" if args.quick else "full"]
    torch.manual_seed(0)
    # Tiny models train 2-5x faster on one thread than two here (less sync, no oversubscription).
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="compress-bench-") as work:
        rows, train_s = run_suite(config, Path(work))
    meta = {
        "suite": config.to_dict(),
        "environment": environment(),
        "train_and_export_s": {k: round(v, 2) for k, v in train_s.items()},
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    written = write_results(rows, meta, args.out)
    STDERR.print(f"wrote {', '.join(str(p) for p in written)} in {meta['elapsed_s']} s")
    return 1 if any(row["status"] == "failed" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
