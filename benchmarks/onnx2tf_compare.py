"""Our ONNX → .tflite lowering against onnx2tf's flatbuffer_direct backend, fp32, same LiteRT.

python3.12 -m venv /tmp/o2t && /tmp/o2t/bin/pip install onnx2tf==2.6.9   # once, no TensorFlow
python -m benchmarks.onnx2tf_compare --onnx2tf /tmp/o2t/bin/onnx2tf

onnx2tf 2.6 needs Python >= 3.12 and pins its own numpy/onnx/onnxruntime, so it runs as a
subprocess from its own virtualenv (never a dependency); it overwrites the ONNX file given to
`-i`, so it gets a copy. Both converters read the same ONNX (the pipeline's cleaned export),
inputs kept in the ONNX layout (`-kat`), batch fixed to 1 (`-b 1`); both files run in this
environment's ai-edge-litert (XNNPACK, 1 thread). Columns:
- op coverage: the per-op test graphs (tests/targets/tflite) that convert and match
  onnxruntime within 1e-4 of the output range;
- per zoo model: conversion wall time (onnx2tf: its CLI process; ours: the lowering in
  process and, for a like-for-like figure, `python -c` + lowering in a fresh process),
  LiteRT p50 at batch 1 (timed interleaved), top-1 agreement with onnxruntime on the digits
  eval split and max |error|.
Writes benchmarks/results/onnx2tf_compare.md and .json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from benchmarks.zoo import ZOO_NAMES, save_zoo_inputs
from compressor.judging.latency import measure_latency
from compressor.model.export import export_onnx
from compressor.model.loading import load_model
from compressor.passes.cleanup import cleanup_onnx
from targets.tflite import TARGET
from targets.tflite.options import TfliteOptions
from targets.tflite.runner import LiteRtRunner

LAYOUTS = [(0, 2, 3, 1), (0, 2, 1)]  # what a channels-last converter may have done to I/O


def convert_onnx2tf(
    exe: str, onnx_path: Path, work: Path, calib: np.ndarray | None = None
) -> tuple[Path | None, float, str]:
    """Run the onnx2tf CLI on a copy; (.tflite or None, wall seconds, error tail). With calib:
    its int8 file with float I/O (`-oiqt`, calibrated on calib, no normalization)."""
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "model.onnx"
    shutil.copy(onnx_path, copy)
    names = [i.name for i in onnx.load(str(copy), load_external_data=False).graph.input]
    command = [exe, "-i", str(copy), "-o", str(work / "out"), "-b", "1", "-n", "-kat", *names]
    if calib is not None:
        np.save(work / "calib.npy", calib.astype(np.float32))
        unit = "[" * calib.ndim + "{}" + "]" * calib.ndim
        command += ["-oiqt", "-cind", names[0], str(work / "calib.npy")]
        command += [unit.format(0.0), unit.format(1.0)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    pattern = "*_float32.tflite" if calib is None else "*_integer_quant.tflite"
    found = sorted(p for p in (work / "out").glob(pattern) if "full_integer" not in p.name)
    found = [p for p in found if "int16" not in p.name]
    error = "" if found else (done.stderr or done.stdout).strip().splitlines()[-1:]
    return (found[0] if found else None), elapsed, " ".join(error)[:200]


def convert_ours_int8(
    onnx_path: Path, work: Path, calib: np.ndarray
) -> tuple[Path | None, float, str]:
    """The pipeline's int8: onnxruntime Q/DQ with the TFLite scheme, then our lowering."""
    from calibration.dataset import Dataset
    from compressor.passes.quantize import quantize_int8_static
    from targets.tflite.capabilities import TFLITE_SCHEME

    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    qdq = work / "qdq.onnx"
    quantize_int8_static(onnx_path, qdq, Dataset({"x": calib}), TFLITE_SCHEME, "minmax", 16)
    artifact = TARGET.lower(qdq, "int8", work, TfliteOptions())
    return artifact.path, time.perf_counter() - started, ""


def convert_ours(onnx_path: Path, work: Path) -> tuple[Path | None, float, str]:
    """Our lowering in process: (file or None, seconds, error)."""
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        artifact = TARGET.lower(onnx_path, "fp32", work, TfliteOptions())
    except Exception as exc:  # a refusal is a coverage result, not a crash
        return None, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"[:200]
    return artifact.path, time.perf_counter() - started, ""


def ours_fresh_process_s(onnx_path: Path, work: Path) -> float:
    """Our conversion timed like a CLI: a fresh Python process importing and lowering."""
    code = (
        "import sys; from targets.tflite import TARGET; from targets.tflite.options import "
        "TfliteOptions; TARGET.lower(sys.argv[1], 'fp32', sys.argv[2], TfliteOptions())"
    )
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(onnx_path), str(work)], check=True)
    return time.perf_counter() - started


def run_tflite(runner: LiteRtRunner, x: np.ndarray, wants: list[tuple]) -> list[np.ndarray]:
    """All outputs for x, one sample at a time, laid back to the ONNX shapes `wants`."""
    spec = runner.inputs[0]
    perm = next((p for p in LAYOUTS if _fits(x, p, spec.shape)), None)
    rows = []
    for sample in x:
        feed = sample[None] if perm is None else sample[None].transpose(perm)
        result = runner.run({spec.name: np.ascontiguousarray(feed)})
        rows.append([result[o.name] for o in runner.outputs])
    outs = [np.concatenate(parts) for parts in zip(*rows, strict=True)]
    return [_onnx_layout(o, w) for o, w in zip(outs, wants, strict=False)]


def _onnx_layout(got: np.ndarray, want: tuple) -> np.ndarray:
    if got.shape == tuple(want):
        return got
    for p in LAYOUTS:
        if len(p) == got.ndim and got.transpose(np.argsort(p)).shape == tuple(want):
            return got.transpose(np.argsort(p))
    return got


def _fits(x: np.ndarray, perm: tuple, shape: tuple) -> bool:
    if len(perm) != x.ndim or len(shape) != x.ndim or tuple(x.shape[1:]) == tuple(shape[1:]):
        return False
    return tuple(x[:1].transpose(perm).shape[1:]) == tuple(shape[1:])


def _matches(want: np.ndarray, got: np.ndarray) -> bool:
    """Within 1e-4 of the output range, as laid out or (for a channels-last output whose shape
    happens to equal the ONNX one, e.g. C = H = W) after laying it back."""
    bound = 1e-4 * max(float(np.ptp(want)), 1.0)
    candidates = [got] + [got.transpose(np.argsort(p)) for p in LAYOUTS if len(p) == got.ndim]
    return any(c.shape == want.shape and np.abs(c - want).max() <= bound for c in candidates)


def _reference(path: Path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def _outcome(path: Path | None, error: str, x: np.ndarray, wants: list[np.ndarray]) -> str:
    """'match', 'mismatch' or 'fails: ...' for one converted file."""
    if path is None:
        return f"fails: {error}"
    try:
        got = run_tflite(LiteRtRunner(path), x, [w.shape for w in wants])
    except Exception as exc:  # a file LiteRT cannot open or run
        return f"fails in LiteRT: {type(exc).__name__}: {str(exc)[:120]}"
    # Output order may differ between converters: each ONNX output must match one of them.
    ok = len(got) == len(wants) and all(any(_matches(w, g) for g in got) for w in wants)
    return "match" if ok else "mismatch"


def op_coverage(exe: str, work: Path) -> list[dict]:
    """Every per-op test graph through both converters, checked against onnxruntime."""
    from tests.targets.tflite.test_ops import FLOAT_CASES, _inputs
    from tests.targets.tflite.test_ops_sequence import CASES

    rows = []
    for name, build in sorted({**FLOAT_CASES, **CASES}.items()):
        model, _ = build()
        folder = work / "ops" / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "case.onnx"
        onnx.save(model, path)
        x = _inputs(model, batch=1)
        wants = _reference(path, x)
        theirs = convert_onnx2tf(exe, path, folder / "onnx2tf")
        ours = convert_ours(path, folder / "ours")
        rows.append(
            {
                "case": name,
                "ops": sorted({n.op_type for n in model.graph.node}),
                "ours": _outcome(ours[0], ours[2], x, wants),
                "onnx2tf": _outcome(theirs[0], theirs[2], x, wants),
            }
        )
    return rows


def zoo_rows(exe: str, name: str, work: Path, runs: int) -> list[dict]:
    """One zoo model in fp32 and int8: conversion time, LiteRT p50, agreement, max error."""
    from benchmarks.zoo import zoo_data

    folder = work / "zoo" / name
    paths = save_zoo_inputs(name, folder)
    loaded = load_model(paths["model"])
    onnx_path = folder / "model.onnx"
    cleanup_onnx(export_onnx(loaded, loaded.inputs, folder / "raw.onnx"), onnx_path)
    data = zoo_data(name)
    x, calib = data["eval"].inputs["x"], data["calib"].inputs["x"][:256]
    want = _reference(onnx_path, x)[0]
    fresh = round(ours_fresh_process_s(onnx_path, folder / "fresh"), 3)
    fp32 = {
        "ours": convert_ours(onnx_path, folder / "ours"),
        "onnx2tf": convert_onnx2tf(exe, onnx_path, folder / "onnx2tf"),
    }
    int8 = {
        "ours": convert_ours_int8(onnx_path, folder / "ours-int8", calib),
        "onnx2tf": convert_onnx2tf(exe, onnx_path, folder / "onnx2tf-int8", calib),
    }
    rows = []
    for mode, files in (("fp32", fp32), ("int8", int8)):
        row = {"model": name, "mode": mode, "samples": len(x), "ours_fresh_process_s": fresh}
        rows.append(row | _measure(files, x, want, runs))
    return rows


def _measure(files: dict, x: np.ndarray, want: np.ndarray, runs: int) -> dict:
    """Agreement with onnxruntime's fp32 top-1, max error and interleaved p50 per converter."""
    row: dict = {}
    runners, feeds = [], []
    for label, (path, seconds, error) in files.items():
        row[f"{label}_convert_s"] = round(seconds, 3)
        if path is None:
            row[f"{label}_error"] = error
            continue
        runner = LiteRtRunner(path)
        got = run_tflite(runner, x, [want.shape])[0]
        row[f"{label}_agree"] = float((got.argmax(1) == want.argmax(1)).mean())
        row[f"{label}_max_err"] = float(np.abs(got - want).max())
        spec = runner.inputs[0]
        perm = next((p for p in LAYOUTS if _fits(x[:1], p, spec.shape)), None)
        sample = x[:1] if perm is None else x[:1].transpose(perm)
        feeds.append({spec.name: np.ascontiguousarray(sample)})
        runners.append(label)
    stats = measure_latency([LiteRtRunner(files[k][0]) for k in runners], feeds, 20, runs)
    row.update(
        {f"{label}_p50_ms": round(st.p50, 4) for label, st in zip(runners, stats, strict=True)}
    )
    return row


def render(coverage: list[dict], zoo: list[dict], meta: dict) -> str:
    """The markdown report."""
    ours = sum(r["ours"] == "match" for r in coverage)
    theirs = sum(r["onnx2tf"] == "match" for r in coverage)
    lines = [
        "# Our TFLite lowering vs onnx2tf (flatbuffer_direct), fp32",
        "",
        f"Measured by `python -m benchmarks.onnx2tf_compare` ({meta['onnx2tf']}; ours with "
        f"ai-edge-litert {meta['litert']}); both files run in the same LiteRT (XNNPACK, 1 thread, "
        "batch 1).",
        "",
        f"**Op coverage** (per-op test graphs converting and matching onnxruntime within 1e-4 of "
        f"the output range): ours {ours}/{len(coverage)}, onnx2tf {theirs}/{len(coverage)}.",
        "",
        "| case | ONNX ops | ours | onnx2tf |",
        "|---|---|---|---|",
    ]
    for r in coverage:
        lines.append(f"| {r['case']} | {', '.join(r['ops'])} | {r['ours']} | {r['onnx2tf']} |")
    lines += [
        "",
        "**Zoo models** (digits eval split; agreement = top-1 agreement with onnxruntime on the "
        "same fp32 ONNX, also for int8; conversion: ours in process / ours in a fresh "
        "`python -c` process / the onnx2tf CLI process; int8 conversion is onnxruntime's "
        "calibration + our lowering against onnx2tf `-oiqt` (which also writes its fp32, fp16 "
        "and int16 files), both calibrated on the same 256 samples, float I/O):",
        "",
        "| model | mode | convert s ours (in process / fresh process) | convert s onnx2tf | "
        "p50 ms ours | p50 ms onnx2tf | agree ours | agree onnx2tf | max err ours | "
        "max err onnx2tf |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    pct = lambda v: "fails" if v is None else f"{v * 100:.2f}%"  # noqa: E731
    num = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    for r in zoo:
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['ours_convert_s']:.3f}"
            f"{' / ' + format(r['ours_fresh_process_s'], '.2f') if r['mode'] == 'fp32' else ''} | "
            f"{r['onnx2tf_convert_s']:.2f} | {num(r.get('ours_p50_ms'), '.4f')} | "
            f"{num(r.get('onnx2tf_p50_ms'), '.4f')} | {pct(r.get('ours_agree'))} | "
            f"{pct(r.get('onnx2tf_agree'))} | {num(r.get('ours_max_err'), '.1e')} | "
            f"{num(r.get('onnx2tf_max_err'), '.1e')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.onnx2tf_compare", description=__doc__
    )
    parser.add_argument("--onnx2tf", required=True, help="onnx2tf executable of its own venv.")
    parser.add_argument("--models", nargs="+", default=ZOO_NAMES)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    version = subprocess.run(
        [str(Path(args.onnx2tf).parent / "pip"), "show", "onnx2tf"], capture_output=True, text=True
    ).stdout
    from importlib.metadata import version as installed

    meta = {
        "onnx2tf": next(
            (line for line in version.splitlines() if line.startswith("Version")), "onnx2tf"
        ).replace("Version: ", "onnx2tf "),
        "litert": installed("ai-edge-litert"),
    }
    with tempfile.TemporaryDirectory(prefix="onnx2tf-compare-") as tmp:
        coverage = op_coverage(args.onnx2tf, Path(tmp))
        zoo = [
            row
            for name in args.models
            for row in zoo_rows(args.onnx2tf, name, Path(tmp), args.runs)
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "onnx2tf_compare.json").write_text(
        json.dumps({"meta": meta, "ops": coverage, "zoo": zoo}, indent=2)
    )
    (args.out / "onnx2tf_compare.md").write_text(render(coverage, zoo, meta))
    print(render(coverage, zoo, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
