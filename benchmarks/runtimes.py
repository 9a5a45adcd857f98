"""The five runtimes side by side, from one run: the zoo, 224x224 latency, EfficientNet-Lite0.

`python -m benchmarks.runtimes [--out DIR] [--runs N] [--no-lite0]` writes runtimes.md and
runtimes.json:
1. zoo: each zoo model (trained on digits) compressed to int8 per runtime by the sweep's job
   runner (benchmarks.run.run_one, sweep file sweeps/runtimes.toml); the report's fp32 reference
   is the same target's fp32 artifact, timed interleaved with the int8 one in that runtime;
2. 224x224 ResNet-18 and MobileNetV2 (random weights, latency only): every runtime's fp32 and
   int8 artifacts timed in one interleaved loop (batch 1, 1 thread), so load hits all alike;
3. EfficientNet-Lite0 (ImageNet weights, the real-models extra): `compress run --int8` per
   runtime from one .pt2, top-1 agreement and SQNR against torch fp32 on 200 photo crops.
TensorRT runs only where tensorrt and a CUDA GPU are: elsewhere its column says why and holds no
number (its Q/DQ proxy in onnxruntime is not TensorRT). The header records `uptime`'s load
average before and after, and the host's int8 ISA.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks.int8_auto import Net, _int8_kernels, export, mobilenet_v2, resnet18
from benchmarks.run import SWEEPS, SuiteConfig, environment, prepare_model, run_one
from benchmarks.tables import side_by_side
from calibration.dataset import Dataset
from compressor.passes.quantize import quantize_int8_static
from compressor.progress import STDERR
from compressor.recipe import Int8Config
from compressor.report.staging import staged_file
from compressor.tuning.trials import interleaved_ms
from foundation.errors import CompressError
from targets.arithmetic.host import host_cpu
from targets.base import TensorSpec, TorchSource
from targets.registry import describe_targets, get_target

SUITE = SuiteConfig("runtimes", SWEEPS / "runtimes.toml")
# Column titles: the runtime each target runs in.
RUNTIMES = {
    "onnx": "onnxruntime",
    "tflite": "LiteRT",
    "openvino": "OpenVINO",
    "executorch": "ExecuTorch (XNNPACK)",
    "tensorrt": "TensorRT",
}
IMAGENET_MODELS = (("resnet18-224", resnet18), ("mobilenetv2-224", mobilenet_v2))
IMAGENET_SPEC = TensorSpec("x", ("batch", 3, 224, 224))
# Random weights time the same int8 layout without the held-back steps (minutes at 224x224).
LAYOUT_ONLY = Int8Config(equalize=False, smooth=False, bias_correction=False)


def runtime_status() -> dict[str, str | None]:
    """Per target: None where it runs natively here, else why not (TensorRT without a GPU and
    tensorrt would only run its labelled onnxruntime proxy, which is not TensorRT)."""
    from targets.tensorrt.toolchain import find_toolchain

    described = {name: (ok, why) for name, ok, why in describe_targets()}
    status = {}
    for name in RUNTIMES:
        ok, why = described.get(name, (False, "not registered"))
        status[name] = None if ok else why
    tools = find_toolchain()
    if tools.tensorrt is None or tools.gpu is None:
        status["tensorrt"] = f"not measured: {tools.why_no_engine()}"
    return status


def zoo_cells(work: Path, native: list[str]) -> list[dict]:
    """One int8 job per zoo model × native runtime, as benchmarks.run's table rows."""
    rows = []
    for model in SUITE.models:
        paths, _ = prepare_model(model, SUITE.epochs.get(model), work / model)
        for target in (t for t in SUITE.spec.targets if t in native):
            STDERR.print(f"[bold]runtimes[/] zoo {model} → {target} int8")
            rows.append(run_one(model, target, "int8", paths, SUITE, work / "out"))
    return rows


def zoo_cells_from(folder: Path, native: list[str]) -> list[dict]:
    """The zoo cells from earlier jobs' reports (folder/<model>/<target>-int8/report.json)."""
    from benchmarks.run import table_row

    jobs = [(m, t, folder / m / f"{t}-int8") for m in SUITE.models for t in native]
    return [table_row(m, t, "int8", "passed", None, f) for m, t, f in jobs if f.is_dir()]


def imagenet_cells(work: Path, native: list[str], runs: int, models: list[str]) -> list[dict]:
    """224x224 fp32 and int8 medians per runtime, every artifact timed in one interleaved loop."""
    rng = np.random.default_rng(0)
    calib = Dataset({"x": rng.standard_normal((16, 3, 224, 224)).astype(np.float32)})
    rows = []
    for name, build in ((n, b) for n, b in IMAGENET_MODELS if n in models):
        torch.manual_seed(0)
        module, folder = Net(build()).eval(), work / name
        folder.mkdir(parents=True)
        fp32 = export(module, IMAGENET_SPEC, folder)
        made, failed = {}, {}
        for target in native:
            try:
                made[target] = lower_pair(target, module, fp32, calib, folder / target)
            except CompressError as exc:  # one runtime's refusal keeps the others' rows
                failed[target] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        rows += [{"model": name, "target": t, "status": why} for t, why in failed.items()]
        runners = [r for pair in made.values() for r in pair["runners"]]
        STDERR.print(f"[bold]runtimes[/] {name}: {len(runners)} artifacts timed interleaved")
        medians = iter(interleaved_ms(runners, calib.feeds(slice(0, 1)), runs))
        for target, pair in made.items():
            fp32_ms, int8_ms = next(medians), next(medians)
            rows.append(
                {
                    "model": name,
                    "target": target,
                    "status": "ok",
                    "fp32_ms": round(fp32_ms, 3),
                    "int8_ms": round(int8_ms, 3),
                    "speedup": round(fp32_ms / int8_ms, 2),
                    "int8_kernels": pair["kernels"],
                    "size_ratio": pair["size_ratio"],
                }
            )
    return rows


def lower_pair(target_name: str, module, fp32: Path, calib: Dataset, folder: Path) -> dict:
    """The target's fp32 and int8 (calibrated minmax in its scheme) artifacts and runners."""
    source = TorchSource(module, (IMAGENET_SPEC,), calib.feeds(slice(0, 1)))
    target = get_target(target_name).bind_torch(source)
    folder.mkdir()
    scheme = target.quant_scheme(None)
    quantize_int8_static(fp32, folder / "int8.onnx", calib, scheme, "minmax", 4, config=LAYOUT_ONLY)
    fp32_art = target.lower(fp32, "fp32", folder / "fp32")
    int8_art = target.lower(folder / "int8.onnx", "int8", folder / "int8")
    return {
        "runners": [target.open_runner(a.path, 1, a.options) for a in (fp32_art, int8_art)],
        "kernels": int8_layers(target_name, int8_art, folder / "opt.onnx"),
        "size_ratio": round(int8_art.size_bytes / fp32_art.size_bytes, 3),
    }


def int8_layers(target_name: str, artifact, optimized: Path) -> str | None:
    """How the runtime took the int8 graph: int8 convs (onnxruntime), int8 weighted layers
    (OpenVINO), ops outside the XNNPACK delegate (ExecuTorch); None where not read."""
    if target_name in ("onnx", "openvino"):
        return _int8_kernels(target_name, artifact, optimized)
    if target_name == "executorch":
        return f"{artifact.info['not_delegated']} ops outside XNNPACK"
    return None


def lite0_cells(work: Path, native: list[str]) -> list[dict]:
    """`compress run --int8` per native runtime on EfficientNet-Lite0 from one .pt2, judged
    against torch fp32 (labels: torch's top-1) on the 200 photo crops."""
    from benchmarks.imagenet_real import missing_requirements, prepare

    if missing := missing_requirements():
        STDERR.print(f"EfficientNet-Lite0 rows skipped: missing {missing}")
        return []
    data = prepare(work)
    data["model"] = export_lite0_pt2(work / "model.pt2", data)
    # Concurrent: fidelity does not depend on load, and each run's speed × fp32 is its own
    # interleaved ratio; one after another they take most of an hour on a loaded 2-core host.
    with ThreadPoolExecutor(len(native)) as pool:
        return list(pool.map(lambda t: lite0_cell(t, data, work), native))


def lite0_cell(target: str, data: dict[str, Path], work: Path) -> dict:
    """One `compress run --int8` on EfficientNet-Lite0 as a row (or why it wrote no report)."""
    from benchmarks.imagenet_real import run_compress

    STDERR.print(f"[bold]runtimes[/] EfficientNet-Lite0 → {target} int8")
    flags = ["--target", target, "--int8", "--runs", "30", "--warmup", "3"]
    try:
        report = run_compress(data["model"], data, flags, work / f"run-{target}")
    except RuntimeError as exc:  # the run wrote no report: say why in its column
        return {"target": target, "status": f"failed: {str(exc)[:300]}"}
    return lite0_row(target, report)


def lite0_cells_from(folder: Path, native: list[str]) -> list[dict]:
    """The EfficientNet-Lite0 cells from earlier runs' reports (folder/<target>-int8/)."""
    paths = [(t, folder / f"{t}-int8" / "report.json") for t in native]
    return [lite0_row(t, json.loads(p.read_text())) for t, p in paths if p.is_file()]


def lite0_row(target: str, report: dict) -> dict:
    """A Lite0 report's row: fidelity against torch fp32 and against the exact Q/DQ graph."""
    from benchmarks.imagenet_real import report_row

    qdq = report.get("qdq_reference") or {}
    vs_qdq = {"vs_qdq_top1": qdq.get("top1_agreement"), "vs_qdq_sqnr_db": qdq.get("sqnr_db")}
    return report_row(target, "default int8", report) | {"status": "ok"} | vs_qdq


def export_lite0_pt2(path: Path, data: dict[str, Path]) -> Path:
    """The pretrained net as a .pt2 (batch dynamic); the fidelity labels become torch's top-1."""
    from benchmarks.efficientnet_lite import pretrained_lite0, weights_path

    module = pretrained_lite0(weights_path())
    fidelity = dict(np.load(data["fidelity"]))
    x = torch.from_numpy(fidelity["x"])
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(module, (x[:2],), dynamic_shapes=({0: batch},)), path)
    with torch.no_grad():
        logits = torch.cat([module(x[i : i + 25]) for i in range(0, len(x), 25)])
    np.savez(data["fidelity"], x=fidelity["x"], labels=logits.argmax(1).numpy())
    return path


def load_average() -> str:
    """`uptime`'s load averages (1, 5, 15 min), the machine being shared."""
    try:
        out = subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout
        return out.rsplit("load average:", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError, IndexError):
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def host_isa() -> str:
    """The CPU model and its int8 features (what decides int8 kernels)."""
    cpu = host_cpu()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    ) if Path("/proc/cpuinfo").is_file() else "unknown CPU"  # fmt: skip
    return f"{model}, {cpu.arch}, int8 features: {', '.join(cpu.features) or 'none'}"


def zoo_rows(cells: list[dict]) -> list[tuple[str, str, dict[str, str]]]:
    """Per model: latencies, speed × fp32 and top-1 in each runtime (or why it did not run)."""
    rows = []
    for model in dict.fromkeys(c["model"] for c in cells):
        mine = {c["target"]: c for c in cells if c["model"] == model}
        failed = {t: c["status"] for t, c in mine.items() if c["status"] != "ok"}
        ok = {t: c for t, c in mine.items() if t not in failed}
        metrics = {
            "p50 ms fp32 / int8": lambda c: f"{c['fp32_p50_ms']:.3f} / {c['p50_ms']:.3f}",
            "int8 speed × fp32": lambda c: f"{c['speedup_vs_fp32_same_runtime']:.2f}×",
            "top-1 % fp32 / int8": lambda c: (
                f"{c['fp32_accuracy_pct']:.2f} / {c['accuracy_pct']:.2f}"
            ),
        }
        for label, show in metrics.items():
            rows.append((model, label, {t: show(c) for t, c in ok.items()} | failed))
    return rows


def imagenet_rows(cells: list[dict]) -> list[tuple[str, str, dict[str, str]]]:
    """Per 224x224 model: fp32 and int8 medians, the speed-up, how the int8 graph ran."""
    rows = []
    for model in dict.fromkeys(c["model"] for c in cells):
        failed = {c["target"]: c["status"] for c in cells if c["model"] == model}
        mine = {c["target"]: c for c in cells if c["model"] == model and c["status"] == "ok"}
        failed = {t: why for t, why in failed.items() if t not in mine}
        rows += [
            (model, "p50 ms fp32 / int8", {t: f"{c['fp32_ms']} / {c['int8_ms']}" for t, c in mine.items()}),
            (model, "int8 speed × fp32", {t: f"{c['speedup']:.2f}×" for t, c in mine.items()}),
            (model, "int8 layers", {t: c["int8_kernels"] or "–" for t, c in mine.items()} | failed),
        ]  # fmt: skip
    return rows


def lite0_rows(cells: list[dict]) -> list[tuple[str, str, dict[str, str]]]:
    """EfficientNet-Lite0 int8 against torch fp32, per runtime."""
    by = {c["target"]: c for c in cells if c["status"] == "ok"}
    failed = {c["target"]: c["status"] for c in cells if c["status"] != "ok"}
    metrics = {
        "top-1 agreement with torch fp32": lambda c: f"{100 * c['agreement']:.1f}%",
        "SQNR dB vs torch fp32": lambda c: f"{c['sqnr_db']:.1f}",
        "cosine": lambda c: f"{c['cosine']:.4f}",
        "top-1 agreement / SQNR dB vs the exact Q/DQ graph": lambda c: (
            "– (runs it)"
            if c["vs_qdq_top1"] is None
            else f"{100 * c['vs_qdq_top1']:.1f}% / {c['vs_qdq_sqnr_db']:.1f}"
        ),
        "int8 speed × fp32 (compress run)": lambda c: f"{c['speed_vs_fp32']:.2f}×",
        "verdict": lambda c: "PASSED" if c["passed"] else "FAILED",
    }
    cells = [{t: show(c) for t, c in by.items()} for show in metrics.values()]
    cells[0] |= failed  # why a runtime has no row, once
    return [("efficientnet-lite0", k, c) for k, c in zip(metrics, cells, strict=True)]


def to_markdown(result: dict) -> str:
    """The three tables, a runtime per column, with the run's conditions in the header."""
    meta, status = result["meta"], result["runtime_status"]
    blank = {t: "not measured" for t, why in status.items() if why}
    lines = [
        "# Five runtimes side by side",
        "",
        f"Measured by `python -m benchmarks.runtimes` in {meta['elapsed_s']} s on "
        f"{meta['host_isa']} ({meta['environment']['cpu_count']} CPUs, shared with other "
        f"jobs); `uptime` load average before {meta['load_before']}, after {meta['load_after']}. "
        f"Runtimes: {'; '.join(meta['runtime_versions'])}.",
        "Batch 1, 1 thread. Speed × fp32 divides the runtime's own fp32 artifact's median by its "
        "int8 artifact's, the two timed interleaved in this run, so the ratio holds under load.",
        *[f"{RUNTIMES[t]}: {why}." for t, why in status.items() if why],
        *(
            [
                f"Zoo and EfficientNet-Lite0 cells come from the report.json files of runs of "
                f"the same jobs made beside this one ({meta['cells_from_reports']}); the "
                "224×224 section was timed in this invocation."
            ]
            if meta.get("cells_from_reports")
            else []
        ),
        "",
        "## Zoo (digits 8×8, trained; int8 per runtime, its fp32 reference timed beside it)",
        "",
        *side_by_side(zoo_rows(result["zoo"]), RUNTIMES, blank),
        "",
        f"## 224×224 (random weights, latency only; all artifacts in one loop of "
        f"{meta['imagenet_runs']} interleaved runs)",
        "",
        *side_by_side(imagenet_rows(result["imagenet"]), RUNTIMES, blank),
    ]
    if result["lite0"]:
        lines += [
            "",
            "## EfficientNet-Lite0 int8 (ImageNet weights; 200 photo crops, labels = torch fp32 "
            "top-1; `compress run --int8` per runtime from one .pt2)",
            "",
            *side_by_side(lite0_rows(result["lite0"]), RUNTIMES, blank),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the three sections in a temporary folder; write runtimes.md and runtimes.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runtimes", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--runs", type=int, default=30, help="224x224 interleaved runs")
    parser.add_argument("--no-lite0", action="store_true", help="skip EfficientNet-Lite0")
    parser.add_argument(
        "--imagenet", nargs="*", default=[n for n, _ in IMAGENET_MODELS], help="224x224 models"
    )
    parser.add_argument(
        "--reports",
        type=Path,
        help="take the zoo and Lite0 cells from earlier runs' report.json files "
        "(DIR/zoo/<model>/<target>-int8/, DIR/lite0/<target>-int8/) instead of running them",
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    status = runtime_status()
    native = [t for t, why in status.items() if why is None]
    started, load_before = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory(prefix="compress-runtimes-") as tmp:
        work = Path(tmp)
        if args.reports:
            imagenet = imagenet_cells(work / "imagenet", native, args.runs, args.imagenet)
            zoo = zoo_cells_from(args.reports / "zoo", native)
            lite0 = lite0_cells_from(args.reports / "lite0", native)
        else:
            with ThreadPoolExecutor(1) as background:  # Lite0's runs are subprocesses
                lite0 = background.submit(
                    lambda: [] if args.no_lite0 else lite0_cells(work / "lite0", native)
                )
                zoo = zoo_cells(work / "zoo", native)
                imagenet = imagenet_cells(work / "imagenet", native, args.runs, args.imagenet)
                lite0 = lite0.result()
    meta = {
        "environment": environment(),
        "host_isa": host_isa(),
        "runtime_versions": [f"{n}: {why}" for n, ok, why in describe_targets() if ok],
        "load_before": load_before,
        "load_after": load_average(),
        "imagenet_runs": args.runs,
        "cells_from_reports": str(args.reports) if args.reports else None,
        "suite": SUITE.to_dict(),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    result = {"meta": meta, "runtime_status": status, "zoo": zoo, "imagenet": imagenet}
    result["lite0"] = lite0
    args.out.mkdir(parents=True, exist_ok=True)
    with staged_file(args.out / "runtimes.json") as handle:
        handle.write((json.dumps(result, indent=1) + "\n").encode())
    with staged_file(args.out / "runtimes.md") as handle:
        handle.write(to_markdown(result).encode())
    print(to_markdown(result))
    return 1 if any(c["status"] == "failed" for c in zoo) else 0


if __name__ == "__main__":
    sys.exit(main())
