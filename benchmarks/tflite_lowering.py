"""Benchmark: the zoo CNNs lowered to .tflite in all four modes, verified in LiteRT.

python -m benchmarks.tflite_lowering [--models lenet resnet mobilenet] [--resolvers default builtin]

Every number comes from the compress pipeline's own report.json, measured in the same run:
top-1 of torch and of the .tflite in LiteRT, max abs error vs torch, top-1 agreement with
onnxruntime on the same Q/DQ graph (int8), TRANSPOSEs inside the graph, conversion time and
LiteRT p50 latency at batch 1.
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
from compressor.recipe import Recipe

CNNS = ["lenet", "resnet", "mobilenet"]
MODES = ["fp32", "fp16", "dynamic", "int8"]


def run(paths: dict[str, Path], out: Path, mode: str, resolver: str, runs: int) -> dict:
    """One compress run to tflite and its report."""
    recipe = Recipe(
        model=str(paths["model"]),
        target="tflite",
        precision=mode,
        calib=str(paths["calib"]),
        eval=str(paths["eval"]),
        runs=runs,
        target_options={"resolver": resolver},
        output=str(out),
    )
    return run_pipeline(recipe).to_json_dict()  # the report.json form


def summarize(name: str, mode: str, resolver: str, report: dict) -> dict:
    """The done-bar numbers of one run."""
    comp, info = report["compressed"], report["artifact_info"]
    qdq = report.get("qdq_reference") or {}
    return {
        "model": name,
        "mode": mode,
        "resolver": resolver,
        "top1_torch": report["baseline"]["accuracy"],
        "top1_tflite": comp["accuracy"],
        "max_abs_error": comp["fidelity"]["max_abs_error"],
        "agree_qdq": qdq.get("top1_agreement"),
        "transpose_inner": info["transpose_inner"],
        "conversion_ms": round(info["conversion_s"] * 1000, 1),
        "p50_ms": comp["latency_ms"]["p50"],
        "size_ratio": round(comp["size_bytes"] / report["baseline"]["size_bytes"], 3),
    }


def render(rows: list[dict], console: Console) -> None:
    """One row per model, mode and resolver."""
    table = Table(title="zoo CNNs → .tflite (LiteRT, batch 1, same run)")
    cols = ["model", "mode", "resolver", "top-1 torch", "top-1 tflite", "max |err|",
            "agree Q/DQ", "inner T", "convert ms", "p50 ms", "size×"]  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col in cols[:3] else "right")
    pct = lambda v: "" if v is None else f"{v * 100:.2f}%"  # noqa: E731
    for r in rows:
        table.add_row(
            r["model"], r["mode"], r["resolver"], pct(r["top1_torch"]), pct(r["top1_tflite"]),
            f"{r['max_abs_error']:.2e}", pct(r["agree_qdq"]), str(r["transpose_inner"]),
            f"{r['conversion_ms']:.1f}", f"{r['p50_ms']:.3f}", f"{r['size_ratio']:.2f}",
        )  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=CNNS)
    parser.add_argument("--modes", nargs="+", default=MODES)
    parser.add_argument("--resolvers", nargs="+", default=["default", "builtin"])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    config = parser.parse_args()
    torch.set_num_threads(1)
    folder = config.dir or Path(tempfile.mkdtemp(prefix="tflite-bench-"))
    rows = []
    for name in config.models:
        paths = save_zoo_inputs(name, folder / name)
        for mode in config.modes:
            for resolver in config.resolvers:
                out = folder / name / f"out-{mode}-{resolver}"
                report = run(paths, out, mode, resolver, config.runs)
                rows.append(summarize(name, mode, resolver, report))
    render(rows, Console(width=160))
    if config.json:
        config.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
