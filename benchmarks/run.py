"""Run every zoo model × available target × precision through the pipeline; write the tables.

python -m benchmarks.run [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnxruntime
import torch

from benchmarks.tables import summarize_report, write_results
from benchmarks.zoo import ZOO_NAMES, save_zoo_inputs
from compressor import __version__
from compressor.errors import UnsupportedOp
from compressor.pipeline import run_pipeline
from compressor.progress import STDERR
from compressor.recipe import Recipe
from targets.base import Target
from targets.registry import describe_targets, get_target


@dataclass(frozen=True)
class SuiteConfig:
    """Which models, how long to train them and how to time them."""

    name: str
    models: tuple[str, ...]
    epochs: dict[str, int] = field(default_factory=dict)  # empty: the zoo's defaults
    precisions: tuple[str, ...] = ()  # empty: every precision the target supports
    runs: int = 100
    warmup: int = 10
    threads: int = 1


SUITES = {
    "full": SuiteConfig("full", tuple(ZOO_NAMES)),
    "quick": SuiteConfig(
        "quick",
        ("lenet", "lstm"),
        epochs={"lenet": 10, "lstm": 15},
        precisions=("fp32", "int8", "dynamic"),
        runs=30,
        warmup=5,
    ),
}


def available_targets() -> list[Target]:
    """Targets whose runtime works on this machine, found through the registry."""
    return [get_target(name) for name, ok, _ in describe_targets() if ok]


def prepare_model(name: str, epochs: int | None, folder: Path) -> tuple[dict[str, Path], float]:
    """Train (cached per process), export with a dynamic batch and save model.pt2 + data."""
    started = time.perf_counter()
    paths = save_zoo_inputs(name, folder, epochs)
    return paths, time.perf_counter() - started


def run_one(
    model: str, target: str, precision: str, paths: dict[str, Path], config: SuiteConfig, work: Path
) -> dict:
    """One pipeline run, summarized as a table row; a failure becomes a row that says why."""
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
    row = {"model": model, "target": target, "precision": precision}
    try:
        return {**row, "status": "ok", **summarize_report(run_pipeline(recipe))}
    except UnsupportedOp as exc:  # a limit the target declares: a row, not a suite failure
        return {**row, "status": "unsupported", "error": str(exc)}
    except Exception as exc:  # one broken combination must not lose the others' measurements
        STDERR.print(f"[red]failed[/] {model} {target} {precision}: {exc}")
        return {**row, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def run_suite(config: SuiteConfig, work: Path) -> tuple[list[dict], dict[str, float]]:
    """Every model × available target × precision; returns rows and per-model training time."""
    targets = available_targets()
    rows, train_s = [], {}
    for model in config.models:
        STDERR.print(f"[bold]benchmark[/] {model}: training and export")
        paths, train_s[model] = prepare_model(model, config.epochs.get(model), work / model)
        for target in targets:
            precisions = config.precisions or target.capabilities.precisions
            for precision in precisions:
                if precision in target.capabilities.precisions:
                    rows.append(run_one(model, target.name, precision, paths, config, work))
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
        "suite": asdict(config),
        "environment": environment(),
        "train_and_export_s": {k: round(v, 2) for k, v in train_s.items()},
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    written = write_results(rows, meta, args.out)
    STDERR.print(f"wrote {', '.join(str(p) for p in written)} in {meta['elapsed_s']} s")
    return 1 if any(row["status"] == "failed" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
