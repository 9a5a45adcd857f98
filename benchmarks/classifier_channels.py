"""Which class channels of a real 1000-class classifier the default floor's channel row can judge.

EfficientNet-Lite0 (real-models extra) quantized by `compress run --int8` on photo crops
(imagenet_real's disjoint calibration and fidelity sets), its int8 logits computed in the exact
Q/DQ arithmetic and in the emulated AVX2 one, each compared with fp32: top-1/top-5 agreement,
mean SQNR, the worst channel over all 1000 classes and over the decisive ones (in a top 5 of
fp32 or int8 on some crop), and what the worst class carries. Why the floor judges the decisive
classes only: docs/verification.md, "Which class channels are judged".
`python -m benchmarks.classifier_channels [--fidelity N] [--calib N] [--work DIR]`
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.imagenet_real import missing_requirements, prepare, run_compress
from compressor.judging.fidelity import measure_fidelity, sqnr_db
from compressor.judging.task_rules import classify_agreement, decisive_classes
from targets.registry import EXACT_ARITHMETIC, reference_runner

ARITHMETICS = (EXACT_ARITHMETIC, "x86-avx2-pairs-int16")
BATCH = 25


def logits_of(model: Path, x: np.ndarray, arithmetic: str = "host") -> np.ndarray:
    """The model's single output on x in onnxruntime, in the arithmetic named."""
    runner = reference_runner(model, 1, arithmetic=arithmetic)
    chunks = [runner.run({"x": x[i : i + BATCH]}) for i in range(0, len(x), BATCH)]
    return np.concatenate([next(iter(c.values())) for c in chunks]).astype(np.float64)


def channel_figures(ref: np.ndarray, cand: np.ndarray) -> dict:
    """Agreement, whole-output SQNR and per-class SQNR (all classes, decisive classes)."""
    per_class = sqnr_db((ref**2).sum(0), ((ref - cand) ** 2).sum(0))
    decisive = decisive_classes(ref, cand)
    worst = int(per_class.argmin())
    return classify_agreement(ref, cand) | {
        "sqnr_mean_db": measure_fidelity(ref, cand).sqnr_mean_db,
        "worst_class_all": worst,
        "worst_class_all_db": round(float(per_class[worst]), 2),
        "classes_below_10db": int((per_class < 10).sum()),
        "worst_class_rms": round(_rms(ref[:, worst]), 3),
        "worst_class_error_rms": round(_rms(ref[:, worst] - cand[:, worst]), 3),
        "output_rms": round(_rms(ref), 3),
        "output_error_rms": round(_rms(ref - cand), 3),
        "decisive_classes": len(decisive),
        "worst_decisive_db": round(float(per_class[decisive].min()), 2),
    }


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt((values**2).mean()))


def measure(folder: Path, fidelity: int, calib: int) -> dict:
    """One default int8 run, then the figures in each arithmetic against fp32."""
    data = prepare(folder, fidelity=fidelity, calib=calib)
    report = run_compress(data["model"], data, ["--target", "onnx", "--int8"], folder / "out")
    x = np.load(data["fidelity"])["x"]
    ref = logits_of(data["model"], x)
    artifact = folder / "out" / report["artifact"]
    rows = {a: channel_figures(ref, logits_of(artifact, x, a)) for a in ARITHMETICS}
    channel = next(b for b in report["budgets"] if b["name"] == "min_channel_sqnr")
    return {"fidelity": fidelity, "calib": calib, "passed": report["passed"], "row": channel} | {
        "distinct_fp32_top1": len(set(ref.argmax(1).tolist())),
        "arithmetics": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fidelity", type=int, default=200)
    parser.add_argument("--calib", type=int, default=32)
    parser.add_argument("--work", type=Path, help="keep model, data and run here")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if missing := missing_requirements():
        print(f"needs pip install 'edge-compressor[real-models]': missing {missing}")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.work or Path(tmp), args.fidelity, args.calib)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "classifier_channels.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
