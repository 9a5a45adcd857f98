"""Per-layer stages of `compress debug`: each quantized tensor in the Q/DQ ONNX graph and in the
target's own artifact, against the fp32 ONNX graph on the same samples.

Per tensor and stage: tensor-wide SQNR, cosine and max |error|, the median channel SQNR (a
tensor-wide figure hides a collapsed majority of channels behind one wide one) and the widest
channel of that stage's own values, as a multiple of fp32's median channel |max| (so an outlier
channel is named at every stage it reaches). The Q/DQ stage reads the dequantized value a
tensor's readers get (what int8 computes), not the float tensor before its QuantizeLinear. The
artifact's tensors come from the target (`Target.trace_layers`, by ONNX tensor name, in the
ONNX layout); a tensor the artifact does not hold is reported as such, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from calibration.activations import float_activations, iterate_activations
from calibration.dataset import Dataset
from compressor.fidelity import sqnr_db
from targets.base import Artifact, Target

NOT_IN_ARTIFACT = "not in the artifact: folded or fused away by the lowering"


@dataclass(frozen=True)
class TensorMatch:
    """One tensor of a later stage against fp32 ONNX: tensor-wide and per channel (axis 1)."""

    sqnr_db: float
    cosine: float
    max_error: float
    median_channel_sqnr_db: float
    widest_channel: int | None
    widest_x_median: float

    def to_dict(self) -> dict:
        return {
            "sqnr_db": round(self.sqnr_db, 2),
            "cosine": round(self.cosine, 5),
            "max_error": float(f"{self.max_error:.4g}"),
            "median_channel_sqnr_db": round(self.median_channel_sqnr_db, 2),
            "widest_channel": self.widest_channel,
            "widest_x_median": round(self.widest_x_median, 1),
        }


def compare_tensor(reference: np.ndarray, test: np.ndarray) -> TensorMatch:
    """How far test is from reference (same shape, ONNX layout, channels on axis 1)."""
    ref, out = reference.astype(np.float64), test.astype(np.float64)
    error = ref - out
    cosine = float(
        ref.ravel() @ out.ravel() / max(np.linalg.norm(ref) * np.linalg.norm(out), 1e-30)
    )
    whole = float(sqnr_db(np.mean(ref**2), np.mean(error**2)))
    if ref.ndim < 2 or ref.shape[1] < 2:
        return TensorMatch(whole, cosine, float(np.abs(error).max(initial=0)), whole, None, 1.0)
    axes = tuple(a for a in range(ref.ndim) if a != 1)
    signal, noise = np.mean(ref**2, axis=axes), np.mean(error**2, axis=axes)
    channels = [float(sqnr_db(s, n)) for s, n in zip(signal, noise, strict=True)]
    absmax = np.abs(out).max(axis=axes)
    widest = int(np.argmax(absmax))
    # Against fp32's median channel: a stage that zeroes most channels has a median of 0.
    ratio = float(absmax[widest] / max(float(np.median(np.abs(ref).max(axis=axes))), 1e-12))
    return TensorMatch(
        whole, cosine, float(np.abs(error).max()), float(np.median(channels)), widest, ratio
    )


def stage_tensors(model: Path, sample: Dataset, names: list[str], batch: int) -> dict:
    """{tensor: values over the whole sample} for the named tensors a graph has."""
    present = [n for n in names if n in set(float_activations(onnx.load(str(model))))]
    parts: dict[str, list[np.ndarray]] = {}
    if not present:
        return {}
    for values, _ in iterate_activations(model, sample, batch, present):
        for name, value in values.items():
            parts.setdefault(name, []).append(np.asarray(value, np.float32))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def dequantized_names(qdq: onnx.ModelProto) -> dict[str, str]:
    """{float tensor: the DequantizeLinear output its readers get}: the value int8 computes,
    which differs from the tensor itself (a Relu the quantizer removed clamps only in the DQ)."""
    quantized = {n.input[0]: n.output[0] for n in qdq.graph.node if n.op_type == "QuantizeLinear"}
    dequantized = {
        n.input[0]: n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"
    }
    return {name: dequantized[q] for name, q in quantized.items() if q in dequantized}


def match_stage(reference: dict, stage: dict, names: list[str]) -> dict[str, dict]:
    """{tensor: TensorMatch dict, or a status saying why there is none} for every name."""
    rows = {}
    for name in names:
        if name not in reference:
            rows[name] = {"status": "not in the fp32 graph"}
        elif name not in stage:
            rows[name] = {"status": NOT_IN_ARTIFACT}
        elif stage[name].shape != reference[name].shape:
            got, want = list(stage[name].shape), list(reference[name].shape)
            rows[name] = {"status": f"shape {got} in this stage, {want} in fp32 ONNX"}
        else:
            rows[name] = compare_tensor(reference[name], stage[name]).to_dict()
    return rows


def trace_artifact(
    target: Target, artifact: Artifact, sample: Dataset, names: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """({tensor: artifact values}, {tensor: making op}) from the target; None: it cannot."""
    traced = target.trace_layers(artifact, sample.feeds(slice(None)))
    if traced is None:
        return None
    wanted = set(names)
    values = {n: v for n, (v, _) in traced.items() if n in wanted}
    return values, {n: where for n, (_, where) in traced.items() if n in wanted}


def layer_stages(
    fp32: Path,
    qdq: Path,
    sample: Dataset,
    names: list[str],
    batch: int,
    traced: tuple[dict, dict] | None,
) -> dict[str, dict]:
    """{tensor: {"qdq": match, "artifact": match with its op, or None}} for every name."""
    reference = stage_tensors(fp32, sample, names, batch)
    readable = dequantized_names(onnx.load(str(qdq)))
    wanted = [readable.get(n, n) for n in names if n in reference]
    values = stage_tensors(qdq, sample, wanted, batch)
    qdq_values = {n: values[readable.get(n, n)] for n in names if readable.get(n, n) in values}
    qdq_rows = match_stage(reference, qdq_values, names)
    artifact_rows: dict[str, dict | None] = dict.fromkeys(names)
    if traced is not None:
        values, where = traced
        matched = match_stage(reference, values, names)
        artifact_rows = {n: {"op": where.get(n), **matched[n]} for n in names}
    return {n: {"qdq": qdq_rows[n], "artifact": artifact_rows[n]} for n in names}


def artifact_note(target: Target, traced: bool, proxy_for: str | None, artifact: Artifact) -> str:
    """One plain sentence on what the artifact stage of the layer table holds."""
    if traced:
        return (
            f"{target.name} artifact: each layer's tensor read from the artifact's own runtime "
            "(by ONNX tensor name, dequantized, in the ONNX layout) against fp32 ONNX."
        )
    if proxy_for:
        why = " ".join(artifact.info.get("notes", [])[:1])
        return (
            f"{target.name}: the artifact runs here only as a proxy (the Q/DQ ONNX in "
            f"onnxruntime), so it has no per-layer tensors of its own: its layers are the q/dq "
            f"columns, and {target.name}'s own layers are not traced. {why}"
        ).strip()
    return (
        f"{target.name}: per-layer tensors of this artifact are not traced; it is compared "
        "on the model outputs only (stage table)."
    )
