"""Graph cleanup: constant folding, BatchNorm folding and simplification of an fp32 ONNX graph."""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort
import onnxslim

from foundation.errors import ExportError

CONTROL_FLOW = ("If", "Loop", "Scan")


def cleanup_onnx(src: Path, dst: Path) -> dict:
    """Fold and simplify src into dst; return node counts before and after.

    onnxruntime's basic (provider-independent) optimizations fold Conv+BatchNorm, which neither
    simplifier does for bias-free convs; onnxslim then simplifies. onnxslim is pure Python
    (2.9 MB) and matched onnxsim (38 MB binary) on the zoo (shared/notes/stack.md).
    """
    before = len(onnx.load(str(src), load_external_data=False).graph.node)
    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "folded.onnx"
        try:
            src = _fold_branches_first(src, Path(tmp) / "branches.onnx")
            _ort_basic_optimize(src, folded)
            slim = onnxslim.slim(onnx.load(str(folded)))
        except Exception as exc:
            raise ExportError(f"Cleaning up the ONNX graph failed: {exc}") from exc
    _drop_unused_opsets(slim)
    onnx.checker.check_model(slim)
    onnx.save(slim, str(dst))
    counts = _op_counts(slim)
    return {
        "nodes_before": before,
        "nodes_after": len(slim.graph.node),
        "batchnorm_left": counts.get("BatchNormalization", 0),
    }


def _fold_branches_first(src: Path, dst: Path) -> Path:
    """A graph with If/Loop/Scan is slimmed before onnxruntime's optimizer sees it.

    onnxruntime 1.32's basic level crashed the process (SIGSEGV) inlining the constant-condition
    Ifs of Silero VAD's shipped graph; onnxslim folds those branches in Python first.
    """
    model = onnx.load(str(src))
    if not any(n.op_type in CONTROL_FLOW for n in model.graph.node):
        return src
    onnx.save(onnxslim.slim(model), str(dst))
    return dst


def _ort_basic_optimize(src: Path, dst: Path) -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    options.log_severity_level = 3
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])


def _drop_unused_opsets(model: onnx.ModelProto) -> None:
    """onnxruntime writes every domain it knows; keep the default one and those nodes use."""
    used = {node.domain for node in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def _op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
