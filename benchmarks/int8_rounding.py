"""Learned rounding and 4-bit weights on the zoo CNNs, through the `compress` CLI.

`python -m benchmarks.int8_rounding [--out DIR] [--models lenet,resnet,mobilenet]` trains each
zoo CNN on the digits, then runs `compress run --target onnx --int8` per configuration
(default; --learned-rounding; --weight-bits 4 plain and learned) and writes int8_rounding.md
and .json: top-1 on the eval split (fp32 beside it), SQNR vs fp32, what the learned-rounding
step measured on the held-back calibration samples, and the run's time. EfficientNet-Lite0's
rows come from `python -m benchmarks.imagenet_real --rounding`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.imagenet_real import run_compress
from benchmarks.zoo import save_zoo_inputs

CNNS = ("lenet", "resnet", "mobilenet")
ROUNDING_CONFIGS = (
    ("default int8", []),
    ("--learned-rounding", ["--learned-rounding"]),
    ("--weight-bits 4", ["--weight-bits", "4"]),
    ("--weight-bits 4 --learned-rounding", ["--weight-bits", "4", "--learned-rounding"]),
)


def rounding_row(model: str, label: str, report: dict) -> dict:
    """One table row from a report.json."""
    comp, int8 = report["compressed"], report["passes"].get("int8", {})
    step = int8.get("steps", {}).get("learned_rounding", {})
    return {
        "model": model,
        "config": label,
        "top1": comp["accuracy"],
        "fp32_top1": report["fp32_reference"]["accuracy"],
        "sqnr_db": comp["fidelity"]["sqnr_db"],
        "rounding_kept": step.get("applied"),
        "held_back_sqnr_db": step.get("held_back_sqnr_db"),
        "rounding_s": step.get("seconds"),
        "seconds": report["elapsed_s"],
    }


def to_markdown(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    head = "| model | config | top-1 | fp32 top-1 | SQNR dB | rounding kept | held-back dB (without → with) | rounding s | run s |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        held = r["held_back_sqnr_db"]
        held = f"{held['without']} → {held['with']}" if held else ""
        lines.append(
            f"| {r['model']} | {r['config']} | {r['top1']} | {r['fp32_top1']} | {r['sqnr_db']} "
            f"| {r['rounding_kept'] if r['rounding_kept'] is not None else ''} | {held} "
            f"| {r['rounding_s'] or ''} | {r['seconds']} |"
        )
    return "\n".join(lines) + "\n"


def measure(folder: Path, models: tuple[str, ...] = CNNS) -> list[dict]:
    """Train and export each model into folder, then one row per configuration."""
    rows = []
    for name in models:
        paths = save_zoo_inputs(name, folder / name)
        data = {"calib": paths["calib"], "fidelity": paths["eval"]}
        for index, (label, flags) in enumerate(ROUNDING_CONFIGS):
            out = folder / name / f"run{index}"
            report = run_compress(paths["model"], data, ["--target", "onnx", "--int8", *flags], out)
            rows.append(rounding_row(name, label, report))
            print(to_markdown(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--models", default=",".join(CNNS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(Path(tmp), tuple(args.models.split(",")))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_rounding.json").write_text(json.dumps({"rows": rows}, indent=1))
    (args.out / "int8_rounding.md").write_text(to_markdown(rows))
    print(to_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
