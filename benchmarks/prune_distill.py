"""Benchmark: 50% structured pruning + distillation on the zoo CNNs, fp32 and int8, via the CLI path.

python -m benchmarks.prune_distill [--models lenet resnet mobilenet] [--epochs 10] [--dir DIR]

Every number comes from the compress pipeline's own report.json, measured in the same run:
ONNX size and ONNX Runtime p50 before/after pruning, torch top-1 after pruning alone and after
distillation, and the shipped artifact's top-1 in ONNX Runtime against the original model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.zoo import save_zoo_inputs
from compressor.pipeline.run import run_pipeline
from compressor.recipe import Budget, DistillConfig, PruneConfig, Recipe

CNNS = ["lenet", "resnet", "mobilenet"]


def run(name: str, folder: Path, precision: str, config: argparse.Namespace) -> dict:
    """One compress run (prune 0.5 + distill) and its report."""
    paths = save_zoo_inputs(name, folder / name)
    recipe = Recipe(
        model=str(paths["model"]),
        precision=precision,
        calib=str(paths["calib"]),
        eval=str(paths["eval"]),
        train=str(paths["train"]),
        runs=config.runs,
        output=str(folder / name / f"out-{precision}"),
        budget=Budget(max_accuracy_drop=2.0),
        prune=PruneConfig(ratio=0.5, method=config.method, round_to=config.round_to),
        distill=DistillConfig(enabled=True, epochs=config.epochs, lr=config.lr),
    )
    return run_pipeline(recipe).to_json_dict()  # the report.json form


def summarize(name: str, precision: str, report: dict) -> dict:
    """The done-bar numbers of one run."""
    prune, distill = report["passes"]["prune"], report["passes"]["distill"]
    base_acc = prune["before"]["accuracy"]
    return {
        "model": name,
        "precision": precision,
        "top1_original": base_acc,
        "top1_pruned": prune["after"]["accuracy"],
        "top1_distilled": distill["after"]["accuracy"],
        "top1_artifact": report["compressed"]["accuracy"],
        "drop_points": round((report["baseline"]["accuracy"] - report["compressed"]["accuracy"]) * 100, 2),
        "params_ratio": round(prune["after"]["params"] / prune["before"]["params"], 3),
        "macs_ratio": round(prune["after"]["macs"] / prune["before"]["macs"], 3),
        "onnx_ratio": round(prune["after"]["onnx_bytes"] / prune["before"]["onnx_bytes"], 3),
        "ort_speedup": round(prune["before"]["ort_p50_ms"] / prune["after"]["ort_p50_ms"], 2),
        "artifact_ratio": round(report["compressed"]["size_bytes"] / report["baseline"]["size_bytes"], 3),
        "passed": report["passed"],
    }  # fmt: skip


def render(rows: list[dict], console: Console) -> None:
    """Ratios against the original model measured in the same run."""
    table = Table(title="50% structured pruning + distillation (ratios vs original, same run)")
    cols = ["model", "prec", "top-1 orig", "pruned", "distilled", "artifact", "drop pts",
            "params×", "MACs×", "ONNX×", "ORT speed-up", "artifact size×", "budget"]  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col in ("model", "prec") else "right")
    pct = lambda v: f"{v * 100:.2f}%"  # noqa: E731
    for r in rows:
        table.add_row(
            r["model"], r["precision"], pct(r["top1_original"]), pct(r["top1_pruned"]),
            pct(r["top1_distilled"]), pct(r["top1_artifact"]), f"{r['drop_points']:.2f}",
            f"{r['params_ratio']:.2f}", f"{r['macs_ratio']:.2f}", f"{r['onnx_ratio']:.2f}",
            f"{r['ort_speedup']:.2f}×", f"{r['artifact_ratio']:.2f}",
            "[green]PASS[/]" if r["passed"] else "[red]FAIL[/]",
        )  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=CNNS)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--method", default="l1")
    parser.add_argument("--round-to", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    config = parser.parse_args()
    torch.set_num_threads(1)
    folder = config.dir or Path(tempfile.mkdtemp(prefix="prune-bench-"))
    rows = [
        summarize(name, precision, run(name, folder, precision, config))
        for name in config.models
        for precision in config.precisions
    ]
    render(rows, Console(width=160))
    if config.json:
        config.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
