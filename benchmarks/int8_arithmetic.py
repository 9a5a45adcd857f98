"""int8 fidelity per CPU arithmetic and weight scheme, on the bundled example and the zoo.

`python -m benchmarks.int8_arithmetic [--out DIR] [--models ...]` writes int8_arithmetic.md
and .json. Per model, three weight schemes from one calibration (bias correction off in every
row, so rows differ only in their weights): full 8-bit, 7-bit (reduce_range), and
saturation-aware (8-bit, only channels whose pairs can leave int16 changed). Each is measured
as SQNR of every output against fp32 on the eval split in exact int32 arithmetic (the Q/DQ
reference: VNNI, ARM, TensorRT), in AVX2 pair arithmetic (the emulation of VPMADDUBSW
kernels, checked against the real ones in tests/targets/arithmetic) and on this host's
kernels, with the speed-up over fp32 on this host's kernels (batch 1, 1 thread, interleaved).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from benchmarks.int8_auto import Net, export
from benchmarks.zoo import trained_model, zoo_data
from calibration.dataset import Dataset
from calibration.digits import digits_splits
from compressor.model.example import DigitsCNN, train_classifier
from compressor.passes.quantize import quantize_int8_static
from compressor.recipe import Int8Config
from compressor.report.staging import staged_file
from compressor.tuning.trials import interleaved_ms
from targets.arithmetic import AVX2_PAIRS, EXACT, emulation_model, exact_session, host_cpu
from targets.arithmetic.saturation import reduce_weight_range
from targets.base import TensorSpec
from targets.onnx.capabilities import ORT_CPU_SCHEME
from targets.onnx.runner import OnnxRuntimeRunner

MODELS = ("example", "lenet", "resnet", "mobilenet", "transformer")
SCHEMES = ("8-bit", "7-bit", "saturation-aware")


def example_model() -> tuple[Net, dict[str, Dataset]]:
    """`compress example`'s DigitsCNN, trained as it trains it, with its calib/eval splits."""
    splits = digits_splits(0)
    import torch

    torch.manual_seed(0)
    train = splits["train"]
    model = train_classifier(DigitsCNN(), train.inputs["input"], train.labels, 15, 0)
    rename = {k: Dataset({"x": v.inputs["input"]}, v.labels, v.source) for k, v in splits.items()}
    return Net(model), rename


def model_and_data(name: str) -> tuple:
    if name == "example":
        return example_model()
    return Net(trained_model(name)), zoo_data(name)


def schemes(fp32: Path, calib: Dataset, work: Path) -> tuple[dict[str, Path], list[dict]]:
    """The three weight schemes of one model, as Q/DQ files in work, and the per-layer
    record of the saturation-aware fix."""
    config = Int8Config(equalize=False, smooth=False, bias_correction=False)
    paths = {s: work / f"{s}.onnx" for s in SCHEMES}
    # Both measured in exact arithmetic wherever a pass measures, so only the weights differ.
    full = dataclasses.replace(ORT_CPU_SCHEME, saturation_safe_weights=False, arithmetic=EXACT.name)
    quantize_int8_static(fp32, paths["8-bit"], calib, full, "minmax", config=config)
    safe = dataclasses.replace(full, saturation_safe_weights=True)
    record = quantize_int8_static(
        fp32, paths["saturation-aware"], calib, safe, "minmax", config=config
    )
    floats = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(fp32)).graph.initializer}
    q8 = onnx.load(str(paths["8-bit"]))
    weights = {
        i.name: floats[i.name.removesuffix("_quantized")]
        for i in q8.graph.initializer
        if i.name.removesuffix("_quantized") in floats
    }
    onnx.save(reduce_weight_range(q8, weights), str(paths["7-bit"]))
    return paths, record.get("saturation_safe_weights", {}).get("layers", [])


def outputs(run, x: np.ndarray) -> np.ndarray:
    """Every eval sample through run (a session's or a runner's), 64 at a time."""
    return np.concatenate([run(x[i : i + 64]) for i in range(0, len(x), 64)])


def session_call(session):
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def sqnr(reference: np.ndarray, y: np.ndarray) -> float:
    return round(float(10 * np.log10((reference**2).sum() / ((reference - y) ** 2).sum())), 2)


def model_rows(name: str, work: Path) -> list[dict]:
    """The three schemes of one model, each measured in every arithmetic."""
    module, data = model_and_data(name)
    x = data["eval"].inputs["x"]
    fp32 = export(module, TensorSpec("x", ("batch", *x.shape[1:])), work)
    paths, fixed = schemes(fp32, data["calib"].take(256), work)
    reference = outputs(session_call(exact_session(fp32)), x)
    fp32_runner = OnnxRuntimeRunner(fp32, 1)
    rows = [scheme_row(paths[s], reference, x, fp32_runner) | {"model": name, "scheme": s}
            for s in SCHEMES]  # fmt: skip
    rows[-1] |= {
        "layers_fixed": len(fixed),
        "channels_rescaled": sum(r["channels_rescaled"] for r in fixed),
        "pairs_pulled_in": sum(r["pairs_pulled_in"] for r in fixed),
    }
    return rows


def scheme_row(path: Path, reference: np.ndarray, x: np.ndarray, fp32_runner) -> dict:
    """SQNR vs fp32 in exact, emulated AVX2 and host arithmetic; speed-up on the host."""
    emulated = emulation_model(onnx.load(str(path)), AVX2_PAIRS).SerializeToString()
    runner = OnnxRuntimeRunner(path, 1)
    output = runner.outputs[0].name
    fp32_ms, int8_ms = interleaved_ms([fp32_runner, runner], {"x": x[:1]}, 50)
    return {
        "exact_sqnr_db": sqnr(reference, outputs(session_call(exact_session(path)), x)),
        "avx2_sqnr_db": sqnr(reference, outputs(session_call(exact_session(emulated)), x)),
        "host_sqnr_db": sqnr(reference, outputs(lambda b: runner.run({"x": b})[output], x)),
        "speedup_vs_fp32_host": round(fp32_ms / int8_ms, 2),
    }


def to_markdown(rows: list[dict], host: dict) -> str:
    """The table, with the host's int8 features (the host column is measured on them)."""
    lines = [
        "# int8 per CPU arithmetic and weight scheme",
        "",
        f"Host: {host['arch']}, int8 features {', '.join(host['int8_features']) or 'none'} "
        f"(from {host['features_from']}): onnxruntime computes int8 here in "
        f"**{host['arithmetic']}** arithmetic (profile {host['profile']}).",
        "",
        "SQNR of the outputs vs fp32 on the eval split (dB, higher is better). exact: int32 "
        "sums (VNNI, ARM, TensorRT, the Q/DQ reference); avx2: onnxruntime's x86 kernels "
        "without VNNI, emulated (checked against the real kernels under qemu -cpu Haswell); "
        "host: this machine's kernels. Speed-up: fp32 / int8 p50 on this host's kernels, "
        "batch 1, 1 thread, timed interleaved. Calibration minmax, no equalize/smooth/bias "
        "correction, so the rows differ only in their weights.",
        "",
        "| model | scheme | exact dB | avx2 dB | host dB | Δ exact vs 8-bit | speed-up vs fp32 | fix |",
        "|---|---|---|---|---|---|---|---|",
    ]
    full = {r["model"]: r["exact_sqnr_db"] for r in rows if r["scheme"] == "8-bit"}
    for r in rows:
        fix = ""
        if r["scheme"] == "saturation-aware":
            fix = (
                f"{r['layers_fixed']} layers, {r['channels_rescaled']} channels rescaled, "
                f"{r['pairs_pulled_in']} pairs pulled in"
            )
        delta = r["exact_sqnr_db"] - full[r["model"]]
        lines.append(
            f"| {r['model']} | {r['scheme']} | {r['exact_sqnr_db']:.2f} | {r['avx2_sqnr_db']:.2f} "
            f"| {r['host_sqnr_db']:.2f} | {delta:+.2f} | {r['speedup_vs_fp32_host']:.2f}× | {fix} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure every model and write int8_arithmetic.md and .json into --out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    args = parser.parse_args(argv)
    host = host_cpu().to_dict()
    rows: list[dict] = []
    for name in args.models:
        with tempfile.TemporaryDirectory() as work:
            rows += model_rows(name, Path(work))
        print(json.dumps(rows[-3:]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with staged_file(args.out / "int8_arithmetic.json") as handle:
        handle.write((json.dumps({"host": host, "rows": rows}, indent=1) + "\n").encode())
    with staged_file(args.out / "int8_arithmetic.md") as handle:
        handle.write(to_markdown(rows, host).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
