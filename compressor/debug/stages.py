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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import onnx

from calibration.activations import float_activations, iterate_activations
from calibration.dataset import Dataset
from compressor.judging.fidelity import sqnr_db
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
    running = RunningMatch()
    running.add(reference, test)
    return running.result()


class RunningMatch:
    """Sums of one tensor's comparison over batches: tensor-wide and per channel (axis 1)."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}

    def add(self, reference: np.ndarray, test: np.ndarray) -> None:
        """Fold in one batch (leading axis: samples)."""
        channels = reference.shape[1] if reference.ndim >= 2 else 1
        ref = reference.astype(np.float64).reshape(len(reference), channels, -1)
        out = test.astype(np.float64).reshape(ref.shape)
        error = ref - out
        batch = {
            "signal": np.sum(ref**2, axis=(0, 2)),
            "noise": np.sum(error**2, axis=(0, 2)),
            "dot": np.sum(ref * out, axis=(0, 2)),
            "test": np.sum(out**2, axis=(0, 2)),
        }
        peaks = {
            "ref_absmax": np.abs(ref).max(axis=(0, 2), initial=0),
            "test_absmax": np.abs(out).max(axis=(0, 2), initial=0),
            "max_error": np.abs(error).max(axis=(0, 2), initial=0),
        }
        for key, value in batch.items():
            self.sums[key] = self.sums.get(key, 0) + value
        for key, value in peaks.items():
            self.sums[key] = np.maximum(self.sums.get(key, value), value)

    def result(self) -> TensorMatch:
        """The match over every batch added."""
        s = self.sums
        whole = float(sqnr_db(s["signal"].sum(), s["noise"].sum()))
        norms = np.sqrt(s["signal"].sum() * s["test"].sum())
        cosine = float(s["dot"].sum() / max(norms, 1e-30))
        max_error = float(s["max_error"].max())
        if len(s["signal"]) < 2:
            return TensorMatch(whole, cosine, max_error, whole, None, 1.0)
        channels = [float(sqnr_db(a, b)) for a, b in zip(s["signal"], s["noise"], strict=True)]
        widest = int(np.argmax(s["test_absmax"]))
        # Against fp32's median channel: a stage that zeroes most channels has a median of 0.
        ratio = s["test_absmax"][widest] / max(float(np.median(s["ref_absmax"])), 1e-12)
        return TensorMatch(
            whole, cosine, max_error, float(np.median(channels)), widest, float(ratio)
        )


class StageMatch:
    """Every named tensor of one stage against fp32 ONNX, batch by batch."""

    def __init__(self, missing: str) -> None:
        self.running: dict[str, RunningMatch] = {}
        self.status: dict[str, str] = {}
        self.where: dict[str, str] = {}
        self.missing = missing

    def add(self, reference: dict, stage: dict) -> None:
        """Fold in one batch: {tensor: fp32 value} and {tensor: this stage's value}."""
        for name, ref in reference.items():
            if name not in stage or name in self.status:
                continue
            if stage[name].shape != ref.shape:
                got, want = list(stage[name].shape), list(ref.shape)
                self.status[name] = f"shape {got} in this stage, {want} in fp32 ONNX"
                continue
            self.running.setdefault(name, RunningMatch()).add(ref, stage[name])

    def rows(self, names: list[str], in_fp32: set[str]) -> dict[str, dict]:
        """{tensor: match dict (with its op where known), or a status saying why none}."""
        rows = {}
        for name in names:
            where = {"op": self.where[name]} if name in self.where else {}
            if name not in in_fp32:
                rows[name] = {**where, "status": "not a float tensor of the fp32 graph"}
            elif name in self.status or name not in self.running:
                rows[name] = {**where, "status": self.status.get(name, self.missing)}
            else:
                rows[name] = {**where, **self.running[name].result().to_dict()}
        return rows


def dequantized_names(qdq: onnx.ModelProto) -> dict[str, str]:
    """{float tensor: the DequantizeLinear output its readers get}: the value int8 computes,
    which differs from the tensor itself (a Relu the quantizer removed clamps only in the DQ)."""
    quantized = {n.input[0]: n.output[0] for n in qdq.graph.node if n.op_type == "QuantizeLinear"}
    dequantized = {
        n.input[0]: n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"
    }
    return {name: dequantized[q] for name, q in quantized.items() if q in dequantized}


def _activations(model: Path, sample: Dataset, names: list[str], batch: int) -> Iterator:
    if not names:  # iterate_activations reads every tensor when given none
        return repeat(({}, 0))
    return iterate_activations(model, sample, batch, names)


def layer_stages(
    fp32: Path,
    qdq: Path,
    sample: Dataset,
    names: list[str],
    batch: int,
    trace: Callable[[dict], dict | None] | None = None,
) -> dict[str, dict]:
    """{tensor: {"qdq": match, "artifact": match with its op, or None}} for every name;
    trace(feeds) gives the artifact's {tensor: (value, op)} per batch, None if it cannot."""
    in_fp32 = set(float_activations(onnx.load(str(fp32)))) & set(names)
    readable = dequantized_names(onnx.load(str(qdq)))
    in_qdq = set(float_activations(onnx.load(str(qdq))))
    read_as = {n: readable.get(n, n) for n in in_fp32 if readable.get(n, n) in in_qdq}
    qdq_stage, artifact = StageMatch("not in the Q/DQ graph"), StageMatch(NOT_IN_ARTIFACT)
    batches = zip(  # not strict: a graph with no tensor to read repeats an empty batch
        _activations(fp32, sample, sorted(in_fp32), batch),
        _activations(qdq, sample, sorted(set(read_as.values())), batch),
        sample.batches(batch),
        strict=False,
    )
    for (reference, _), (quantized, _), (feeds, _) in batches:
        qdq_stage.add(reference, {n: quantized[m] for n, m in read_as.items()})
        traced = trace(feeds) if trace is not None else None
        if traced is None:
            trace = None
            continue
        artifact.add(reference, {n: value for n, (value, _) in traced.items()})
        artifact.where.update({n: where for n, (_, where) in traced.items() if n in in_fp32})
    qdq_rows = qdq_stage.rows(names, in_fp32)
    artifact_rows = artifact.rows(names, in_fp32) if trace is not None else dict.fromkeys(names)
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
