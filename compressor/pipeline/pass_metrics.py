"""What each torch pass bought, measured after export: ONNX size (raw, gzipped) and latency.

Measurement belongs to verification, not to the passes: passes never open a runtime.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from calibration.dataset import Dataset
from compressor.judging.latency import measure_latency, timing_feeds
from compressor.passes.sparsity import MASK_BUILDERS
from compressor.recipe import Recipe
from targets.registry import reference_runner


def measure_onnx_stages(
    info: dict, original: Path, final: Path, data: Dataset | None, recipe: Recipe
) -> list[str]:
    """Add ONNX size (raw, gzipped) and ONNX Runtime p50 before/after to each pass; say verdicts.

    Only the original and the final model are exported: the passes after the first keep the
    final architecture (distillation changes values, not shapes), so they share its numbers.
    """
    runners = [reference_runner(p, recipe.threads) for p in (original, final)]
    feeds = [timing_feeds(r, 1, data) for r in runners]
    stats = measure_latency(runners, feeds, recipe.warmup, recipe.runs, recipe.threads)
    measured = [
        {"onnx_bytes": p.stat().st_size, "onnx_gzip_bytes": len(gzip.compress(p.read_bytes())),
         "ort_p50_ms": s.p50}
        for p, s in zip((original, final), stats, strict=True)
    ]  # fmt: skip
    for index, name in enumerate(info):
        info[name]["before"].update(measured[0 if index == 0 else 1])
        info[name]["after"].update(measured[1])
    return _verdicts(info, measured)


def _verdicts(info: dict, measured: list[dict]) -> list[str]:
    before, after = measured
    speed = before["ort_p50_ms"] / max(after["ort_p50_ms"], 1e-9)
    size = after["onnx_bytes"] / max(before["onnx_bytes"], 1)
    notes = []
    prune = info.get("prune")
    if prune and prune["method"] in MASK_BUILDERS:
        zipped = after["onnx_gzip_bytes"] / max(before["onnx_gzip_bytes"], 1)
        notes.append(
            f"{prune['method']} sparsity ({prune['model_sparsity'] * 100:.1f}% of weights are "
            f"zero) keeps dense tensors: ONNX size {size:.2f}× (gzipped {zipped:.2f}×), ONNX "
            f"Runtime {speed:.2f}× the speed. Zeros shrink compressed size, not dense latency"
            + (
                "; 2:4 pays only on sparse tensor cores (TensorRT, Ampere+)."
                if prune["method"] == "2:4"
                else "."
            )
        )
    elif prune and speed < 1.05:
        notes.append(
            f"Pruning did NOT pay in latency here: ONNX Runtime p50 {after['ort_p50_ms']:.3f} ms vs "
            f"{before['ort_p50_ms']:.3f} ms before ({speed:.2f}×), though the weights are "
            f"{size:.2f}× the size. Try a larger ratio or --prune-round-to 8/16."
        )
    elif prune:
        notes.append(
            f"Pruning made the ONNX model {speed:.2f}× as fast in ONNX Runtime (p50 "
            f"{before['ort_p50_ms']:.3f} → {after['ort_p50_ms']:.3f} ms) at {size:.2f}× the size."
        )
    return notes
