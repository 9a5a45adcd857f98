"""Default int8 vs --qat on the zoo CNNs (digits), through the real pipeline, one target.

For each CNN: `compress run model.pt2 --int8 --calib calib.npz --eval eval.npz` and the same
with `--qat` (label-free, on the calibration data); the int8 model's fidelity to fp32 (SQNR,
top-1 agreement), its top-1 on eval, QAT's held-back SQNR before/after and the time spent.

    python -m benchmarks.qat_zoo [--models lenet,resnet,mobilenet] [--target onnx] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.zoo import save_zoo_inputs
from compressor.pipeline.run import run_pipeline
from compressor.recipe import QatConfig, Recipe

RESULTS = Path(__file__).parent / "results" / "qat_zoo.json"


def run_row(name: str, paths: dict, target: str, qat: QatConfig | None, out: Path) -> dict:
    """One compress run; its fidelity, accuracy and time."""
    recipe = Recipe(
        model=str(paths["model"]),
        target=target,
        precision="int8",
        calib=str(paths["calib"]),
        eval=str(paths["eval"]),
        output=str(out),
        runs=5,
        warmup=1,
        threads=1,
        **({"qat": qat} if qat else {}),
    )
    started = time.perf_counter()
    report = run_pipeline(recipe)
    data = json.loads((out / "report.json").read_text())
    passes = data.get("passes", {})
    fidelity = report.compressed.fidelity or {}
    return {
        "model": name,
        "target": target,
        "variant": "qat" if qat else "default int8",
        "sqnr_db": fidelity.get("sqnr_db"),
        "top1_agreement": fidelity.get("top1"),
        "accuracy": report.compressed.accuracy,
        "fp32_accuracy": report.baseline.accuracy,
        "qat": {k: v for k, v in passes.get("qat", {}).items() if k not in ("ranges", "history")},
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the table and write benchmarks/results/qat_zoo.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="lenet,resnet,mobilenet")
    parser.add_argument("--target", default="onnx")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-5)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="qat-zoo-") as tmp:
        for name in args.models.split(","):
            paths = save_zoo_inputs(name, Path(tmp) / name)
            for qat in (None, QatConfig(enabled=True, epochs=args.epochs, lr=args.lr)):
                out = Path(tmp) / name / ("qat" if qat else "int8")
                rows.append(run_row(name, paths, args.target, qat, out))
                print(json.dumps(rows[-1]), flush=True)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
