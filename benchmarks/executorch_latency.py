"""ExecuTorch (XNNPACK) int8 vs fp32 on the 224x224 MobileNetV2-shaped net, beside onnxruntime.

`python -m benchmarks.executorch_latency [--runs N] [--out DIR]` writes executorch_latency.md
and .json. Random weights and random calibration images (latency only, as int8_auto's 224x224
rows): the net is calibrated once in the executorch target's scheme, lowered through the
target (fp32 and int8 .pte) and timed at batch 1 on 1 thread, fp32 and int8 interleaved run
by run in the same runtime, so their ratio holds on a loaded machine. The onnx row times the
same model's fp32 and U8S8 Q/DQ graphs in onnxruntime the same way, for comparison.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.int8_auto import Net, export, mobilenet_v2
from calibration.dataset import Dataset
from compressor.passes.quantize import quantize_int8_static
from compressor.tuning.trials import interleaved_ms
from targets.base import TensorSpec, TorchSource
from targets.onnx.capabilities import ORT_CPU_SCHEME
from targets.onnx.runner import OnnxRuntimeRunner
from targets.registry import get_target

SPEC = TensorSpec("x", ("batch", 3, 224, 224))


def latency_rows(work: Path, runs: int) -> list[dict]:
    """One row per runtime: fp32 and int8 medians (ms), speed-up, artifact sizes."""
    torch.manual_seed(0)
    module = Net(mobilenet_v2()).eval()
    rng = np.random.default_rng(0)
    calib = Dataset({"x": rng.standard_normal((16, 3, 224, 224)).astype(np.float32)})
    fp32 = export(module, SPEC, work)
    target = get_target("executorch").bind_torch(
        TorchSource(module, (SPEC,), calib.feeds(slice(0, 1)))
    )
    quantize_int8_static(fp32, work / "xnn.onnx", calib, target.quant_scheme(None), "minmax", 4)
    quantize_int8_static(fp32, work / "ort.onnx", calib, ORT_CPU_SCHEME, "minmax", 4)
    pte = {
        p: target.lower(fp32 if p == "fp32" else work / "xnn.onnx", p, work / p)
        for p in ("fp32", "int8")
    }
    feed = calib.feeds(slice(0, 1))
    pairs = {
        "executorch (XNNPACK)": [target.open_runner(pte[p].path, 1) for p in ("fp32", "int8")],
        "onnx (onnxruntime)": [OnnxRuntimeRunner(fp32, 1), OnnxRuntimeRunner(work / "ort.onnx", 1)],
    }
    sizes = {
        "executorch (XNNPACK)": [pte[p].size_bytes for p in ("fp32", "int8")],
        "onnx (onnxruntime)": [fp32.stat().st_size, (work / "ort.onnx").stat().st_size],
    }
    rows = []
    for name, runners in pairs.items():
        fp32_ms, int8_ms = interleaved_ms(runners, feed, runs)
        rows.append(
            {
                "model": "mobilenetv2-224",
                "runtime": name,
                "fp32_ms": round(fp32_ms, 3),
                "int8_ms": round(int8_ms, 3),
                "speedup": round(fp32_ms / int8_ms, 2),
                "size_ratio": round(sizes[name][1] / sizes[name][0], 3),
            }
        )
    rows[0]["not_delegated_int8"] = pte["int8"].info["not_delegated_ops"]
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| model (random weights) | runtime | fp32 ms | int8 ms | int8 speed-up | size vs fp32 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['fp32_ms']} | {r['int8_ms']} | "
            f"{r['speedup']}x | {r['size_ratio']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows = latency_rows(Path(tmp), args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "executorch_latency.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "executorch_latency.md").write_text(to_markdown(rows))
    print(to_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
